"""The progress bar of ``pushgate push-image`` (``service.image_commands.ProgressBar``)."""

from __future__ import annotations

from service.image_commands import ProgressBar


def test_the_bar_counts_bytes_and_blobs() -> None:
    """The bar's total is the planned bytes; it advances by the bytes sent (back on a
    retry) and its label counts the blobs done."""
    with ProgressBar() as bar:
        bar.planned(2, 300)
        bar.advanced(200)
        bar.advanced(-50)  # an upload started over
        bar.advanced(150)
        bar.blob_done("sha256:a")
        bar.blob_done("sha256:b")
        task = bar.bar.tasks[0]
    assert (300, 300, "blobs 2/2") == (task.total, task.completed, task.description)
