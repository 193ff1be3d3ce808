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


def test_no_eta_until_the_estimate_is_stable(capsys, monkeypatch):
    """The first items carry the start-up: an estimate from them was 100 times too long."""
    import audiogpt2.progress as progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    p = Progress(200, "preprocess", unit="clip", interval=0.0)
    now[0] = 60.0
    p.update()  # one clip after 60 s of start-up
    assert "ETA soon" in capsys.readouterr().out
    for _ in range(3):
        now[0] += 1.0
        p.update()
    assert "ETA soon" not in capsys.readouterr().out.splitlines()[-1]
    for _ in range(196):
        now[0] += 1.0
        p.update()
    last = capsys.readouterr().out.splitlines()[-1]
    assert "ETA 0 s" in last and "soon" not in last
