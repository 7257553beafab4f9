#!/usr/bin/env bash
# Captures the first bytes real clients send, for the protocol-detection corpus in
# test/fixtures/first-packets/ (expectations live in index.json there, written by hand).
#
# For each client a tiny recorder listens on 127.0.0.1:0, accepts one connection and keeps what
# arrives until the client has been quiet for IDLE_MS (or 16 KiB), then closes. Clients that wait
# for the server (TLS, RTMP, SSH, psql after SSLRequest) therefore leave exactly their first flight.
# MySQL is server-first: its file is empty, which is why MySQL is routed by port.
#
# Needs (Debian): curl openssl postgresql-client redis-tools ffmpeg openssh-client mariadb-client
# python3-pymongo, and node. Install them with:
#   apt-get update && apt-get install -y curl openssl postgresql-client redis-tools ffmpeg \
#     openssh-client mariadb-client python3-pymongo
#
# Usage: scripts/capture-first-packets.sh [out-dir]   (default test/fixtures/first-packets)
# Only the files named below are rewritten. TLS randoms, RTMP C1 and MongoDB request ids differ on
# every run; the expectations in index.json do not depend on them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/test/fixtures/first-packets}
IDLE_MS=${IDLE_MS:-700}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/recorder.mjs" <<'EOF'
// node recorder.mjs <out.bin> <port-file> <idle-ms>
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
const [out, portFile, idleText] = process.argv.slice(2);
const idleMs = Number(idleText);
const chunks = [];
let size = 0;
const finish = (socket) => {
  writeFileSync(out, Buffer.concat(chunks).subarray(0, 16384));
  socket?.destroy();
  server.close();
  clearTimeout(overall);
};
const server = createServer((socket) => {
  server.close(); // one connection only
  let timer = setTimeout(() => finish(socket), idleMs * 3); // silent clients (MySQL)
  socket.on('data', (chunk) => {
    chunks.push(chunk);
    size += chunk.length;
    clearTimeout(timer);
    timer = size >= 16384 ? setImmediate(() => finish(socket)) : setTimeout(() => finish(socket), idleMs);
  });
  socket.on('error', () => {});
  socket.on('end', () => {
    clearTimeout(timer);
    finish(socket);
  });
});
const overall = setTimeout(() => {
  console.error(`recorder: no connection for ${out}`);
  process.exit(1);
}, 20000);
server.listen(0, '127.0.0.1', () => writeFileSync(portFile, String(server.address().port)));
EOF

# capture <name> <command…>: runs the command with every "{PORT}" replaced by the recorder's port.
capture() {
  local name=$1
  shift
  local portFile="$WORK/$name.port"
  node "$WORK/recorder.mjs" "$OUT/$name.bin" "$portFile" "$IDLE_MS" &
  local recorder=$!
  for _ in $(seq 100); do
    [[ -s $portFile ]] && break
    sleep 0.05
  done
  local port
  port=$(cat "$portFile")
  local args=()
  for a in "$@"; do args+=("${a//\{PORT\}/$port}"); done
  timeout 20 "${args[@]}" </dev/null >"$WORK/$name.client.log" 2>&1 &
  local client=$!
  wait "$recorder"
  kill "$client" 2>/dev/null || true
  wait "$client" 2>/dev/null || true
  printf '%-28s %6d bytes  (%s)\n' "$name.bin" "$(stat -c %s "$OUT/$name.bin")" "$1"
}

# HTTP/1.x
capture curl-http11 curl -s -o /dev/null -H 'Host: shop.example.com' 'http://127.0.0.1:{PORT}/orders/42?expand=items'
capture curl-http10-post curl -s -o /dev/null -0 -H 'Host: api.example.com' -d 'name=alice' 'http://127.0.0.1:{PORT}/api/users'
# A forward-proxy CONNECT request (authority-form target).
capture curl-connect curl -s -o /dev/null -p -x 'http://127.0.0.1:{PORT}' 'https://api.example.com/'
# HTTP/2 with prior knowledge (h2c): the connection preface.
# HTTP/1.1 asking to upgrade to h2c: still an HTTP/1.1 request.
capture curl-h2c-upgrade curl -s -o /dev/null --http2 -H 'Host: grpc.example.com' 'http://127.0.0.1:{PORT}/'
capture curl-h2-prior-knowledge curl -s -o /dev/null --http2-prior-knowledge 'http://127.0.0.1:{PORT}/grpc.health.v1.Health/Check'

# TLS ClientHello: curl offers ALPN h2 + http/1.1 by default; --http1.1 offers http/1.1 only.
capture curl-https-h2 curl -s -o /dev/null -k --resolve 'www.example.com:{PORT}:127.0.0.1' 'https://www.example.com:{PORT}/'
capture curl-https-http11 curl -s -o /dev/null -k --http1.1 --resolve 'www.example.com:{PORT}:127.0.0.1' 'https://www.example.com:{PORT}/'
capture openssl-sni-alpn-h2 openssl s_client -connect '127.0.0.1:{PORT}' -servername db.example.com -alpn h2
capture openssl-sni openssl s_client -connect '127.0.0.1:{PORT}' -servername db.example.com
capture openssl-no-sni openssl s_client -connect '127.0.0.1:{PORT}' -noservername
capture openssl-tls12 openssl s_client -connect '127.0.0.1:{PORT}' -tls1_2 -servername legacy.example.com -alpn http/1.1
# A ClientHello spread over two handshake records (512-byte fragments, a long ALPN list).
capture openssl-fragmented openssl s_client -connect '127.0.0.1:{PORT}' -servername media.example.com \
  -max_send_frag 512 -alpn http/1.1,spdy/3.1,acme-tls/1,imap,pop3,managesieve,coap,xmpp-client,xmpp-server,stun.turn,stun.nat-discovery,webrtc,c-webrtc,ftp,irc,sunrpc,smb,dot,ntske/1,sip/2,tds/8.0,dicom,postgresql,radius/1.0,h2

# PostgreSQL (psql 15): StartupMessage, SSLRequest. psql only sends a GSSENCRequest when it holds
# Kerberos credentials, so that packet is built by hand below.
capture psql-startup psql 'host=127.0.0.1 port={PORT} user=alice dbname=orders sslmode=disable gssencmode=disable' -c 'select 1'
capture psql-sslrequest psql 'host=127.0.0.1 port={PORT} user=alice dbname=orders sslmode=require gssencmode=disable' -c 'select 1'

# Redis: redis-cli sends RESP arrays.
capture redis-cli-ping redis-cli -p '{PORT}' PING
capture redis-cli-set redis-cli -p '{PORT}' SET greeting hello

# MongoDB: PyMongo 3.11 opens with an OP_QUERY isMaster on admin.$cmd.
capture pymongo-ismaster /usr/bin/python3 -c "
import pymongo
c = pymongo.MongoClient('mongodb://127.0.0.1:{PORT}/?directConnection=true', serverSelectionTimeoutMS=3000)
c.admin.command('ping')
"

# RTMP: ffmpeg publishing a test pattern sends C0 (version 3) and C1 (1536 bytes).
capture ffmpeg-rtmp-publish ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc -t 1 -f flv 'rtmp://127.0.0.1:{PORT}/live/key'

# SSH: the client sends its banner without waiting for the server's.
capture ssh-banner ssh -p '{PORT}' -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null 127.0.0.1

# MySQL/MariaDB: server-first, the client says nothing until it gets a greeting.
capture mariadb-silent mariadb --protocol=TCP -h 127.0.0.1 -P '{PORT}' -u alice --connect-timeout=5 -e 'select 1'

# Hand-built packets, for clients that cannot be run here (see index.json "source").
node --input-type=module - "$OUT" <<'EOF'
import { writeFileSync } from 'node:fs';
const out = process.argv[2];
// Minimal BSON encoder for the documents below (strings, int32, nested documents).
const cstring = (s) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
const bson = (doc) => {
  const parts = [];
  for (const [k, v] of Object.entries(doc)) {
    if (typeof v === 'number') {
      const n = Buffer.alloc(4);
      n.writeInt32LE(v);
      parts.push(Buffer.from([0x10]), cstring(k), n);
    } else if (typeof v === 'string') {
      const s = Buffer.from(v, 'utf8');
      const len = Buffer.alloc(4);
      len.writeInt32LE(s.length + 1);
      parts.push(Buffer.from([0x02]), cstring(k), len, s, Buffer.from([0]));
    } else {
      parts.push(Buffer.from([0x03]), cstring(k), bson(v));
    }
  }
  const body = Buffer.concat(parts);
  const len = Buffer.alloc(4);
  len.writeInt32LE(body.length + 5);
  return Buffer.concat([len, body, Buffer.from([0])]);
};
const header = (length, requestId, opCode) => {
  const h = Buffer.alloc(16);
  h.writeInt32LE(length, 0);
  h.writeInt32LE(requestId, 4);
  h.writeInt32LE(0, 8); // responseTo
  h.writeInt32LE(opCode, 12);
  return h;
};
// OP_MSG hello, as drivers send it with loadBalanced=true or a declared server API version.
const doc = bson({
  hello: 1,
  loadBalanced: 1,
  client: { driver: { name: 'nodejs', version: '6.9.0' }, os: { type: 'Linux' } },
  $db: 'admin',
});
const body = Buffer.concat([Buffer.alloc(4) /* flagBits */, Buffer.from([0]) /* kind 0 */, doc]);
writeFileSync(`${out}/hand-mongodb-op-msg-hello.bin`, Buffer.concat([header(16 + body.length, 1, 2013), body]));

const pg = (length, code) => {
  const b = Buffer.alloc(length);
  b.writeInt32BE(length, 0);
  b.writeInt32BE(code, 4);
  return b;
};
// GSSENCRequest (psql sends it only with Kerberos credentials) and CancelRequest (pid 4242, key).
writeFileSync(`${out}/hand-postgres-gssencrequest.bin`, pg(8, 80877104));
const cancel = pg(16, 80877102);
cancel.writeInt32BE(4242, 8);
cancel.writeInt32BE(0x5eed1234, 12);
writeFileSync(`${out}/hand-postgres-cancelrequest.bin`, cancel);
// StartupMessage without "database" (the server then uses the user name) and with options.
const kv = ['user', 'bob', 'options', '-c search_path=app', 'application_name', 'billing-worker'];
const params = Buffer.concat([...kv.map(cstring), Buffer.from([0])]);
const startup = Buffer.concat([pg(8, 196608), params]);
startup.writeInt32BE(startup.length, 0);
writeFileSync(`${out}/hand-postgres-startup-no-database.bin`, startup);
// Redis inline commands, as typed into telnet/nc (redis-cli only speaks RESP).
writeFileSync(`${out}/hand-redis-inline-ping.bin`, 'PING\r\n');
writeFileSync(`${out}/hand-redis-inline-get.bin`, 'get user:42\r\n');
EOF
for f in hand-mongodb-op-msg-hello hand-postgres-gssencrequest hand-postgres-cancelrequest \
  hand-postgres-startup-no-database hand-redis-inline-ping hand-redis-inline-get; do
  printf '%-28s %6d bytes  (hand-built)\n' "$f.bin" "$(stat -c %s "$OUT/$f.bin")"
done
