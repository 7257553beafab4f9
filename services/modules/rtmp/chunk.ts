/**
 * The RTMP chunk stream (Adobe RTMP spec §5.3): a decoder that turns one peer's chunks into
 * whole messages (tracking its chunk size, per-stream headers and extended timestamps, honouring
 * Abort), and an encoder that chunks messages for a peer at our chunk size. The decoder is
 * bounded: message size, chunk size and the bytes held in unfinished messages are capped, and
 * a violation is an error, never an exception.
 */

export interface RtmpMessage {
  typeId: number;
  /** Message stream id. */
  streamId: number;
  timestamp: number;
  payload: Buffer;
}

export const MSG_SET_CHUNK_SIZE = 1;
export const MSG_ABORT = 2;
export const MSG_ACK = 3;
export const MSG_USER_CONTROL = 4;
export const MSG_WINDOW_ACK_SIZE = 5;
export const MSG_SET_PEER_BANDWIDTH = 6;
export const MSG_AUDIO = 8;
export const MSG_VIDEO = 9;
export const MSG_DATA_AMF3 = 15;
export const MSG_SHARED_OBJECT_AMF3 = 16;
export const MSG_COMMAND_AMF3 = 17;
export const MSG_DATA_AMF0 = 18;
export const MSG_SHARED_OBJECT_AMF0 = 19;
export const MSG_COMMAND_AMF0 = 20;
export const MSG_AGGREGATE = 22;

/** The largest chunk size a peer may set (the spec allows 2^31 - 1; a message is at most 2^24 - 1). */
const MAX_CHUNK_SIZE = 0xffffff;

interface StreamState {
  fmtSeen: boolean;
  timestamp: number;
  delta: number;
  length: number;
  typeId: number;
  streamId: number;
  extended: boolean;
  parts: Buffer[];
  got: number;
}

export interface DecodeResult {
  messages: RtmpMessage[];
  /** Set when the peer broke the protocol or a limit; the connection should close. */
  error?: string;
}

export class ChunkDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private chunkSize = 128;
  private readonly streams = new Map<number, StreamState>();
  private pendingBytes = 0;
  /** Bytes received so far (for acknowledgements). */
  bytesIn = 0;

  constructor(
    private readonly maxMessageBytes: number,
    /** Bytes held in unfinished messages across chunk streams at most. */
    private readonly maxPendingBytes = maxMessageBytes * 2,
  ) {}

  /** Decodes what it can; keeps an incomplete chunk for the next push. */
  push(chunk: Buffer): DecodeResult {
    this.bytesIn += chunk.length;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const messages: RtmpMessage[] = [];
    for (;;) {
      const r = this.next();
      if (r === null) break;
      if (typeof r === 'string') return { messages, error: r };
      if (r.message) {
        // Set Chunk Size and Abort act on the decoder itself, in order with the chunks.
        if (r.message.typeId === MSG_SET_CHUNK_SIZE) {
          if (r.message.payload.length < 4) return { messages, error: 'short Set Chunk Size' };
          const size = r.message.payload.readUInt32BE(0) & 0x7fffffff;
          if (size < 1 || size > MAX_CHUNK_SIZE) return { messages, error: `chunk size ${size}` };
          this.chunkSize = size;
        } else if (r.message.typeId === MSG_ABORT && r.message.payload.length >= 4) {
          const s = this.streams.get(r.message.payload.readUInt32BE(0));
          if (s) this.drop(s);
        }
        messages.push(r.message);
      }
    }
    if (this.buf.length > this.chunkSize + 18 + this.maxPendingBytes)
      return { messages, error: 'too many bytes buffered' };
    return { messages };
  }

  private drop(s: StreamState): void {
    this.pendingBytes -= s.got;
    s.parts = [];
    s.got = 0;
  }

  /** One chunk: a message when it completes one, {} when not, null for more bytes, a string for an error. */
  private next(): { message?: RtmpMessage } | null | string {
    const b = this.buf;
    if (b.length < 1) return null;
    const fmt = b[0] >> 6;
    let csid = b[0] & 0x3f;
    let p = 1;
    if (csid === 0) {
      if (b.length < 2) return null;
      csid = 64 + b[1];
      p = 2;
    } else if (csid === 1) {
      if (b.length < 3) return null;
      csid = 64 + b[1] + b[2] * 256;
      p = 3;
    }
    const headerBytes = [11, 7, 3, 0][fmt];
    if (b.length < p + headerBytes) return null;
    let s = this.streams.get(csid);
    if (!s) {
      if (fmt !== 0) return `chunk stream ${csid} starts with a type ${fmt} header`;
      if (this.streams.size >= 1024) return 'too many chunk streams';
      s = {
        fmtSeen: false,
        timestamp: 0,
        delta: 0,
        length: 0,
        typeId: 0,
        streamId: 0,
        extended: false,
        parts: [],
        got: 0,
      };
      this.streams.set(csid, s);
    }
    const starting = s.got === 0;
    if (!starting && fmt !== 3) return `chunk stream ${csid}: a new header in the middle of a message`;
    let tsField = 0;
    if (fmt <= 2) tsField = b.readUIntBE(p, 3);
    let length = s.length;
    let typeId = s.typeId;
    let streamId = s.streamId;
    if (fmt <= 1) {
      length = b.readUIntBE(p + 3, 3);
      typeId = b[p + 6];
    }
    if (fmt === 0) streamId = b.readUInt32LE(p + 7);
    p += headerBytes;
    const extended = fmt <= 2 ? tsField === 0xffffff : s.extended;
    let ext = 0;
    if (extended) {
      if (b.length < p + 4) return null;
      ext = b.readUInt32BE(p);
      p += 4;
    }
    if (length > this.maxMessageBytes) return `message of ${length} bytes`;
    const want = Math.min(this.chunkSize, length - s.got);
    if (b.length < p + want) return null;
    // The chunk is complete: commit the header state.
    if (starting) {
      const t = extended ? ext : tsField;
      if (fmt === 0) {
        s.timestamp = t;
        s.delta = 0;
      } else if (fmt === 1 || fmt === 2) {
        s.delta = t;
        s.timestamp = (s.timestamp + t) >>> 0;
      } else if (s.fmtSeen) s.timestamp = (s.timestamp + s.delta) >>> 0;
      s.length = length;
      s.typeId = typeId;
      s.streamId = streamId;
      s.extended = extended;
      s.fmtSeen = true;
    }
    if (want > 0) {
      s.parts.push(b.subarray(p, p + want));
      s.got += want;
      this.pendingBytes += want;
      if (this.pendingBytes > this.maxPendingBytes) return 'too many bytes in unfinished messages';
    }
    this.buf = b.subarray(p + want);
    if (s.got < s.length) return {};
    // Socket chunks are fresh buffers, so a one-part payload can be a view of the input.
    const payload = s.parts.length === 1 ? s.parts[0] : Buffer.concat(s.parts);
    this.drop(s);
    return { message: { typeId: s.typeId, streamId: s.streamId, timestamp: s.timestamp, payload } };
  }
}

/** Conventional chunk stream ids per message kind. */
function csidFor(m: RtmpMessage): number {
  if (m.streamId === 0 && m.typeId <= MSG_SET_PEER_BANDWIDTH) return 2;
  if (m.typeId === MSG_AUDIO) return 4;
  if (m.typeId === MSG_VIDEO) return 6;
  if (m.typeId === MSG_DATA_AMF0 || m.typeId === MSG_DATA_AMF3) return 5;
  return 3;
}

/** Chunks messages for one peer: a type 0 header on each message's first chunk, type 3 after. */
export class ChunkEncoder {
  chunkSize = 128;

  encode(m: RtmpMessage): Buffer {
    const csid = csidFor(m);
    const extended = m.timestamp >= 0xffffff;
    const head = Buffer.alloc(1 + 11 + (extended ? 4 : 0));
    head[0] = csid; // fmt 0
    head.writeUIntBE(extended ? 0xffffff : m.timestamp, 1, 3);
    head.writeUIntBE(m.payload.length, 4, 3);
    head[7] = m.typeId;
    head.writeUInt32LE(m.streamId >>> 0, 8);
    if (extended) head.writeUInt32BE(m.timestamp >>> 0, 12);
    if (m.payload.length <= this.chunkSize) return Buffer.concat([head, m.payload]);
    const cont = Buffer.alloc(1 + (extended ? 4 : 0));
    cont[0] = 0xc0 | csid; // fmt 3
    if (extended) cont.writeUInt32BE(m.timestamp >>> 0, 1);
    const parts: Buffer[] = [head];
    for (let off = 0; off < m.payload.length; off += this.chunkSize) {
      if (off > 0) parts.push(cont);
      parts.push(m.payload.subarray(off, off + this.chunkSize));
    }
    return Buffer.concat(parts);
  }
}

/** Protocol control and user control messages. */
export const control = {
  setChunkSize: (size: number): RtmpMessage => u32(MSG_SET_CHUNK_SIZE, size),
  ack: (bytes: number): RtmpMessage => u32(MSG_ACK, bytes >>> 0),
  windowAckSize: (size: number): RtmpMessage => u32(MSG_WINDOW_ACK_SIZE, size),
  setPeerBandwidth: (size: number, limitType = 2): RtmpMessage => {
    const p = Buffer.alloc(5);
    p.writeUInt32BE(size);
    p[4] = limitType;
    return { typeId: MSG_SET_PEER_BANDWIDTH, streamId: 0, timestamp: 0, payload: p };
  },
  userControl: (event: number, ...values: number[]): RtmpMessage => {
    const p = Buffer.alloc(2 + 4 * values.length);
    p.writeUInt16BE(event);
    values.forEach((v, i) => p.writeUInt32BE(v >>> 0, 2 + 4 * i));
    return { typeId: MSG_USER_CONTROL, streamId: 0, timestamp: 0, payload: p };
  },
};

function u32(typeId: number, v: number): RtmpMessage {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(v >>> 0);
  return { typeId, streamId: 0, timestamp: 0, payload: p };
}

/** User control events. */
export const UC_STREAM_BEGIN = 0;
export const UC_STREAM_EOF = 1;
export const UC_STREAM_DRY = 2;
export const UC_SET_BUFFER_LENGTH = 3;
export const UC_STREAM_IS_RECORDED = 4;
export const UC_PING_REQUEST = 6;
export const UC_PING_RESPONSE = 7;
