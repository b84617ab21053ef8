"""Progress bars: tqdm in a terminal, a few plain lines in a log file."""

from __future__ import annotations

import io
import re

from tqdm.auto import tqdm

from xdistill.progress import LogProgress, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_progress_prints_a_few_plain_lines_whatever_the_updates():
    stream = io.StringIO()
    with progress_bar(total=1000, desc="train", unit="step", file=stream, leave=False, dynamic_ncols=True) as bar:
        assert isinstance(bar, LogProgress)
        for step in range(1000):
            bar.update(1)
            bar.set_postfix({"loss": f"{1 / (step + 1):.3f}"}, refresh=False)
    text = stream.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    # start, 10 % to 90 %, end: 11 lines for any number of updates.
    assert len(lines) == 11, lines
    assert lines[0] == "train: started, 0/1000 step"
    assert [int(re.match(r"train: (\d+)%", line).group(1)) for line in lines[1:-1]] == list(range(10, 100, 10))
    assert re.fullmatch(r"train: done, 1000/1000 step, [0-9.]+ step/s, [0-9.]+s elapsed \[loss=0\.001\]", lines[-1])


def test_log_progress_counts_batches_and_stops_short():
    stream = io.StringIO()
    bar = progress_bar(total=25, desc="cache", unit="img", file=stream)
    bar.set_postfix_str("t0/labeled")
    for _ in range(3):
        bar.update(7)
    bar.close()
    bar.close()
    lines = stream.getvalue().splitlines()
    # 7, 14 and 21 of 25 cross the 20 %, 50 % and 80 % marks.
    assert [line.split(",")[0] for line in lines] == ["cache: started", "cache: 20%", "cache: 50%", "cache: 80%",
                                                      "cache: stopped"]
    assert lines[-1].startswith("cache: stopped, 21/25 img, ") and lines[-1].endswith(" [t0/labeled]")


def test_log_progress_resumed_reports_only_the_tenths_still_to_come():
    stream = io.StringIO()
    with progress_bar(total=10, initial=6, desc="weighted", unit="step", file=stream) as bar:
        for _ in range(4):
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "weighted: started, 6/10 step (resumed at 6)"
    assert [line.split(",")[0] for line in lines[1:]] == ["weighted: 70%", "weighted: 80%", "weighted: 90%",
                                                          "weighted: done"]


def test_disabled_bar_prints_nothing(capsys):
    stream = io.StringIO()
    for file in (stream, None):
        with progress_bar(total=100, desc="x", disable=True, file=file) as bar:
            for _ in range(100):
                bar.update(1)
                bar.set_postfix(loss="1.0")
    assert stream.getvalue() == ""
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_tqdm():
    stream = Terminal()
    with progress_bar(total=5, desc="bench", unit="run", file=stream) as bar:
        assert isinstance(bar, tqdm)
        bar.update(5)
    assert "bench" in stream.getvalue()


def test_distill_logs_plain_progress_when_stderr_is_not_a_terminal(tiny_task, tiny_zoo, tmp_path, capsys):
    from xdistill.cli.main import main

    args = ["distill", "--task", str(tiny_task), "--zoo", str(tiny_zoo), "--cache", str(tmp_path / "cache"),
            "--method", "weighted", "--out", str(tmp_path / "run"), "--epochs", "2", "progress=true", "batch_size=4"]
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code
    err = capsys.readouterr().err
    assert "\r" not in err
    progress = [line for line in err.splitlines() if line.startswith(("cache tiny:", "weighted:"))]
    assert progress[0].startswith("cache tiny: started") and progress[-1].startswith("weighted: done")
    assert 4 <= len(progress) <= 22, progress
