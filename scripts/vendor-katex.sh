#!/usr/bin/env bash
# Copies KaTeX (npm package `katex`, pinned in tools/package.json) into web/vendor/katex so that the lesson
# (web/learn.html) typesets its maths offline, served by more-server from the repository: no CDN.
# web/vendor is generated (git-ignored); scripts/build-web.sh runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
src=tools/node_modules/katex/dist
[ -f "$src/katex.min.js" ] || { echo "vendor-katex: $src missing: run (cd tools && npm ci)" >&2; exit 1; }
out=web/vendor/katex
rm -rf "$out" && mkdir -p "$out/fonts"
cp "$src/katex.min.js" "$src/katex.min.css" "$out/"
cp "$src"/fonts/*.woff2 "$out/fonts/"
cp tools/node_modules/katex/LICENSE "$out/LICENSE" 2>/dev/null || true
echo "vendor-katex: $(du -sh "$out" | cut -f1) in $out" >&2
