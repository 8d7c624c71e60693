#!/usr/bin/env bash
# The park scenario, end to end, on a built-in sample: a publisher publishes real software (the
# TypeScript compiler and yargs, as installed in node_modules), nginx serves the remote on
# loopback, a budgeted sync stops at its budget, a second one completes, and the synced compiler
# is used to compile a file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

bash scripts/ensure-system-deps.sh
[ -d node_modules/yargs ] || npm ci --no-audit --no-fund
npm run build --silent

DEMO=${PAQUETE_DEMO_DIR:-$(mktemp -d /tmp/paquete-demo.XXXXXX)}
mkdir -p "$DEMO"
# mktemp makes the directory private (0700); nginx's worker (another user) must read the remote in it.
chmod 755 "$DEMO"
cd "$DEMO"
paquete() { node "$ROOT/bin/paquete.js" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. The publisher (good link): a key, and a snapshot of the sample sources"
rm -rf remote work publisher.key publisher.key.pub nginx
paquete keygen --out publisher.key
paquete publish "typescript=$ROOT/node_modules/typescript" "docs:yargs=$ROOT/node_modules/yargs" --to remote --key publisher.key

say "2. The remote is plain static files, served by nginx on loopback"
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
mkdir -p nginx/logs nginx/tmp
cat > nginx/nginx.conf <<CONF
worker_processes 1;
pid $DEMO/nginx/nginx.pid;
error_log $DEMO/nginx/logs/error.log;
events { worker_connections 64; }
http {
  access_log $DEMO/nginx/logs/access.log;
  client_body_temp_path $DEMO/nginx/tmp;
  proxy_temp_path $DEMO/nginx/tmp;
  fastcgi_temp_path $DEMO/nginx/tmp;
  uwsgi_temp_path $DEMO/nginx/tmp;
  scgi_temp_path $DEMO/nginx/tmp;
  types { application/json json; }
  default_type application/octet-stream;
  server { listen 127.0.0.1:$PORT; root $DEMO/remote; }
}
CONF
/usr/sbin/nginx -p "$DEMO/nginx" -c "$DEMO/nginx/nginx.conf"
trap 'kill $(cat "$DEMO/nginx/nginx.pid" 2>/dev/null) 2>/dev/null || true' EXIT
echo "serving $DEMO/remote at http://127.0.0.1:$PORT/"

say "3. In the park: init over HTTP, trusting the publisher's key"
paquete init "http://127.0.0.1:$PORT/" work --trust publisher.key.pub

say "4. First card: 1.2 MB. The plan first, then the sync; it stops at the budget (exit 3)"
paquete sync -C work --budget 1.2MB --dry-run | tail -n 3
set +e
paquete sync -C work --budget 1.2MB
code=$?
set -e
echo "exit code $code (3 = stopped by the budget, progress saved)"
[ "$code" = 3 ] || { echo "expected exit 3"; exit 1; }
paquete status -C work

say "5. Between two cards, the publisher releases a new version (yargs' docs change)"
rm -rf yargs-next && cp -r "$ROOT/node_modules/yargs" yargs-next
printf '\n## Park notes\n\nThis line came out between two cards.\n' >> yargs-next/README.md
paquete publish "typescript=$ROOT/node_modules/typescript" "docs:yargs=$DEMO/yargs-next" --to remote --key publisher.key | tail -n 2

say "6. Second card: 1.2 MB again. It finishes the first card's stream, takes the release's delta, and completes"
paquete sync -C work --budget 1.2MB
paquete status -C work
grep -q 'came out between two cards' work/yargs/README.md && echo "work/yargs/README.md is the new release's"

say "7. At home, offline: use what arrived — compile a file with the synced TypeScript compiler"
cat > hello.ts <<'TS'
const where: string = 'a park in Havana';
console.log(`compiled offline with a compiler synced from ${where}`);
TS
node work/typescript/bin/tsc --version
node work/typescript/bin/tsc --outDir out hello.ts
node out/hello.js
ls work/yargs | head -n 5

say "8. At home, paquete serve makes the mirror browsable (catalog, docs, pip index, git, LAN peers)"
node "$ROOT/bin/paquete.js" serve -C work --port 0 > serve.log 2>&1 &
SERVE_PID=$!
trap 'kill $SERVE_PID 2>/dev/null || true; kill $(cat "$DEMO/nginx/nginx.pid" 2>/dev/null) 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q 'http://' serve.log && break; sleep 0.2; done
URL=$(grep -o 'http://[0-9.:]*' serve.log | head -n 1)
echo "catalog at $URL/ :"
# (node's fetch, not curl: a fresh machine may not have curl)
node -e 'fetch(process.argv[1]).then((r) => r.text()).then((t) => console.log(/\d+ of \d+ files complete[^\n]*/.exec(t.replace(/<[^>]*>/g, ""))?.[0] ?? "(no summary)"))' "$URL/"
node -e 'fetch(process.argv[1]).then((r) => console.log(`yargs README served: ${r.status} ${r.headers.get("content-type")}`))' "$URL/docs/yargs/README.md"
kill $SERVE_PID

echo
echo "nginx saw $(wc -l < nginx/logs/access.log) requests; the demo lives in $DEMO"
