#!/usr/bin/env bash
# Install what the tests need on a fresh Debian/Ubuntu machine and run them.
# LibreOffice (headless) is the spreadsheet engine of the round-trip tests; without it they skip.
# Chromium (Debian's) is the browser of the page's end-to-end test (tests/test_browser.py), same rule.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! { command -v soffice >/dev/null && /usr/bin/python3 -c "import uno" 2>/dev/null && [ -x /usr/bin/chromium ]; }; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends \
             libreoffice-calc-nogui python3-uno fonts-noto-cjk poppler-utils chromium >/dev/null; }; then
      # In CI the engine tests must run; elsewhere they skip, each with its reason.
      [ "${CI:-}" = "true" ] && { echo "error: could not install LibreOffice and Chromium" >&2; exit 1; }
      echo "warning: could not install LibreOffice and Chromium; the engine and browser tests will skip" >&2
    fi
  else
    echo "warning: no apt-get here; install LibreOffice + python3-uno and Chromium yourself or their tests skip" >&2
  fi
fi

PY="${PYTHON:-python3}"
"$PY" -m pip install --quiet --disable-pip-version-check ".[test]"
"$PY" -m pytest "$@"
