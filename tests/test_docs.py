"""The documentation names only what exists: every relative link and `docs/...` path of
README.md and docs/*.md, and every `python -m cost_jax.X` command, which must import and
answer `--help`."""

import glob
import os
import re
import subprocess
import sys

import pytest

import processes

ROOT = processes.ROOT
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w/.])((?:docs|configs|benchmarks|launch|notebooks|cost_jax)/[\w./-]+)")
MODULE = re.compile(r"python3? -m ((?:cost_jax|benchmarks)(?:\.\w+)+)")


def _text(page):
  with open(page, encoding="utf-8") as f:
    return f.read()


def _anchors(page):
  """GitHub's anchors of a page's headings."""
  out = set()
  for heading in re.findall(r"^#+ (.+)$", _text(page), re.M):
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    out.add(slug)
  return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_link_and_named_path_exists(page):
  missing = []
  for target in LINK.findall(_text(page)):
    if "://" in target or target.startswith("mailto:"):
      continue
    path, _, anchor = target.partition("#")
    full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
    if not os.path.exists(full):
      missing.append(target)
    elif anchor and full.endswith(".md") and anchor not in _anchors(full):
      missing.append(target)
  text = _text(page)
  for match in PATH.finditer(text):
    path = match.group(1).rstrip(".")
    # Patterns (`docs/coefficients_*.json`, shell variables) and the files the commands
    # write (`docs/benchmarks/bench_MODE.json`) need not exist.
    if text[match.end():match.end() + 1] in "*${" or any(
        w in path for w in ("MODE", "RUN", "bench_", "docs/benchmarks")):
      continue
    if not os.path.exists(os.path.join(ROOT, path)):
      missing.append(path)
  assert not missing, f"{os.path.relpath(page, ROOT)} names what does not exist: {missing}"


def test_every_module_named_answers_help():
  modules = sorted({m for page in PAGES for m in MODULE.findall(_text(page))})
  assert {"cost_jax.main", "cost_jax.prepare", "cost_jax.bench.model",
          "benchmarks.batch_norm"} <= set(modules)
  env = processes.environment()
  procs = {m: subprocess.Popen([sys.executable, "-m", m, "--help"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for m in modules}
  failed = {}
  for m, proc in procs.items():
    out = proc.communicate(timeout=300)[0]
    # absl exits with status 1 after printing the help; an import error prints a
    # traceback.
    if proc.returncode not in (0, 1) or "Traceback" in out or not (
        "usage" in out.lower() or "flags" in out.lower()):
      failed[m] = out[-500:]
  assert not failed, failed
