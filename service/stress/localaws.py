"""``python -m service.stress.localaws PORT``: the stress command's own moto server.

LocalAWS (one AWS call at a time, ECR corrected by ``service.localecr``: a tag move
keeps the old image, so pushgate's tag repair can find it; immutable conflicts answer
``ImageTagAlreadyExistsException``) on 127.0.0.1:PORT, in a child process so that moto
does not share an interpreter lock with the workers. It prints its endpoint once it
listens.
"""

from __future__ import annotations

import sys

from service.localaws import LocalAWS


def main() -> None:
    port = int(sys.argv[1])
    server = LocalAWS("127.0.0.1", port)
    server.start()
    sys.stdout.write(f"{server.endpoint}\n")
    sys.stdout.flush()
    server.serve_until_interrupted()


if __name__ == "__main__":
    main()
