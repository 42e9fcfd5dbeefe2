"""``python -m service.stress.localaws PORT``: the stress command's own moto server.

LocalAWS (one AWS call at a time) on 127.0.0.1:PORT, in a child process so that moto
does not share an interpreter lock with the workers. In a source checkout it installs
``tests/ecr_fidelity.py`` (moto corrected to behave like ECR: a tag move keeps the old
image, so pushgate's tag repair can find it; immutable conflicts answer
``ImageTagAlreadyExistsException``); it prints ``fidelity on`` or ``fidelity off``.
"""

from __future__ import annotations

import sys

from service.localaws import LocalAWS


def main() -> None:
    port = int(sys.argv[1])
    fidelity = "off"
    try:
        from tests.ecr_fidelity import EcrFidelity  # noqa: PLC0415 - source checkouts only
    except ImportError:
        pass
    else:
        EcrFidelity().install()
        fidelity = "on"
    server = LocalAWS("127.0.0.1", port)
    server.start()
    sys.stdout.write(f"{server.endpoint} fidelity {fidelity}\n")
    sys.stdout.flush()
    server.serve_until_interrupted()


if __name__ == "__main__":
    main()
