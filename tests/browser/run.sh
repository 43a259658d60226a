#!/bin/sh
# The web dashboard's end-to-end test in Debian's headless Chromium (tests/browser/).
# Installs playwright-core from the committed package-lock.json when node_modules is
# missing; Chromium itself comes from Debian (tools/deps.sh), never from a download.
# Prints "browser: N passed, M failed" (tests/run_all.sh adds it up).
cd "$(dirname "$0")" || exit 1
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    echo "FAIL chromium: $CHROMIUM not found (make deps installs Debian's chromium)"
    echo "browser: 0 passed, 1 failed"
    exit 1
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "FAIL node: node and npm are needed for the browser test"
    echo "browser: 0 passed, 1 failed"
    exit 1
fi
if [ ! -f node_modules/playwright-core/package.json ]; then
    if ! npm ci --no-audit --no-fund --loglevel=error; then
        echo "FAIL npm ci: could not install playwright-core"
        echo "browser: 0 passed, 1 failed"
        exit 1
    fi
fi
# playwright-core must never fetch a browser of its own.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 CHROMIUM="$CHROMIUM" exec node dashboard.test.mjs
