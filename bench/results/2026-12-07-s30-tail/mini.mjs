// node mini.mjs PORT stream|userbuf : a GET-only RESP server answering from a Map, replies written
// once per turn (setImmediate), reading through the Readable stream ('data') or through a user
// buffer installed on the accepted socket's handle (Node's onread path), copying each read.
import { createServer } from 'node:net';

const [port, mode] = [Number(process.argv[2]), process.argv[3]];
const data = new Map();
const val = Buffer.alloc(100, 120);
const reply = Buffer.concat([Buffer.from('$100\r\n'), val, Buffer.from('\r\n')]);
for (let i = 0; i < 100000; i++) data.set(`key:${String(i).padStart(12, '0')}`, reply);
const NIL = Buffer.from('$-1\r\n');
const pending = [];
let scheduled = false;
function flush() {
  scheduled = false;
  for (const [s, b] of pending) s.write(b);
  pending.length = 0;
}
function onData(socket, chunk) {
  // *2\r\n$3\r\nGET\r\n$N\r\nKEY\r\n
  let p = 14, len = 0;
  while (chunk[p] !== 13) len = len * 10 + chunk[p++] - 48;
  p += 2;
  const key = chunk.toString('latin1', p, p + len);
  pending.push([socket, data.get(key) ?? NIL]);
  if (!scheduled) { scheduled = true; setImmediate(flush); }
}
let kBuffer, kBufferCb;
const server = createServer({ noDelay: true }, (socket) => {
  if (mode === 'userbuf') {
    if (!kBuffer) {
      for (const s of Object.getOwnPropertySymbols(socket)) {
        if (s.description === 'kBuffer') kBuffer = s;
        if (s.description === 'kBufferCb') kBufferCb = s;
      }
    }
    const buf = Buffer.allocUnsafeSlow(65536);
    socket[kBuffer] = buf;
    socket[kBufferCb] = (n, b) => {
      const copy = process.env.SLOW ? Buffer.allocUnsafeSlow(n) : Buffer.allocUnsafe(n);
      b.copy(copy, 0, 0, n);
      onData(socket, copy);
    };
    socket._handle.useUserBuffer(buf);
    socket.on('data', () => { throw new Error('data'); });
  } else socket.on('data', (c) => onData(socket, c));
  socket.on('error', () => {});
});
server.listen(port, '127.0.0.1', () => console.log('listening'));
