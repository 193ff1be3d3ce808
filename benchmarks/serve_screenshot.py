"""The README's picture of the `serve` page: a trained ESC-10 checkpoint, a recording made of
three clips from that checkpoint's own test fold (dog, rooster, crying baby, 5 s each),
uploaded in headless Chromium (Debian's chromium and chromium-driver).

    python benchmarks/serve_screenshot.py CHECKPOINT ESC50_ROOT [--fold 1] [--out docs/serve.png]

The published picture used runs/esc10-recipe-cnn-only/fold1/baseline/best.pt and
data/ESC-10 (fold 1 is that checkpoint's test fold).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

CLASSES = ("dog", "rooster", "crying_baby")


def recording(root: Path, fold: int, out: Path) -> Path:
    with open(root / "meta" / "esc50.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    parts = []
    for category in CLASSES:
        row = next(r for r in rows if r["category"] == category and int(r["fold"]) == fold)
        y, sr = sf.read(root / "audio" / row["filename"], dtype="float32")
        parts.append(y)
    sf.write(out, np.concatenate(parts), sr)
    return out


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("root", type=Path)
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/serve.png"))
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "audiogpt2", "serve", args.checkpoint, "--port", str(port)]
    server = subprocess.Popen(cmd)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1150"):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as tmp:
        wav = recording(args.root, args.fold, Path(tmp) / "dog-rooster-baby.wav")
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        service = webdriver.ChromeService(shutil.which("chromedriver"))
        browser = webdriver.Chrome(service=service, options=options)
        try:
            browser.get(f"http://127.0.0.1:{port}/")
            wait = WebDriverWait(browser, 120)
            upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
            upload.send_keys(str(wav))
            text = lambda b: b.find_element(By.CSS_SELECTOR, "body").text  # noqa: E731
            wait.until(lambda b: "%" in text(b) and "processing" not in text(b))
            time.sleep(2.0)
            browser.save_screenshot(str(args.out))
        finally:
            browser.quit()
            server.terminate()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
