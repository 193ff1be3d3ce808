from audiogpt2.progress import Progress


def test_plain_lines_when_not_a_terminal(capsys):
    # pytest captures stderr, so this is the log-file case: plain lines, no bar
    p = Progress(4, "preprocess", unit="clip", interval=0.0)
    p.set_postfix(loss="0.5")
    for _ in range(4):
        p.update()
    p.close()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[1].startswith("preprocess: 2/4 clip (50%), ETA")
    assert lines[-1].endswith("loss 0.5")


def test_plain_lines_are_rate_limited_and_can_be_off(capsys):
    p = Progress(100, "train", interval=30.0)
    for _ in range(100):
        p.update()
    Progress(10, "quiet", enabled=False).update()
    assert capsys.readouterr().out == ""
