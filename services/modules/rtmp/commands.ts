/**
 * RTMP command messages (AMF0, type 20; AMF3 commands, type 17, carry AMF0 after a format byte):
 * parsing a command's name, transaction id and arguments, and building the few answers the
 * relay gives on its own (connect, createStream, onStatus).
 */
import { decodeAmf0, encodeAmf0, type Amf0Value } from './amf0.js';
import { MSG_COMMAND_AMF0, MSG_COMMAND_AMF3, type RtmpMessage } from './chunk.js';

export interface Command {
  name: string;
  txn: number;
  /** The command object (connect's app, tcUrl…), often null. */
  object: Amf0Value;
  args: Amf0Value[];
}

/** The command in a type 20 / 17 message, or null (not a command, or malformed). */
export function parseCommand(m: RtmpMessage): Command | null {
  if (m.typeId !== MSG_COMMAND_AMF0 && m.typeId !== MSG_COMMAND_AMF3) return null;
  const body = m.typeId === MSG_COMMAND_AMF3 && m.payload[0] === 0 ? m.payload.subarray(1) : m.payload;
  const v = decodeAmf0(body);
  if (!v || typeof v[0] !== 'string') return null;
  return { name: v[0], txn: typeof v[1] === 'number' ? v[1] : 0, object: v[2] ?? null, args: v.slice(3) };
}

export const command = (streamId: number, ...values: Amf0Value[]): RtmpMessage => ({
  typeId: MSG_COMMAND_AMF0,
  streamId,
  timestamp: 0,
  payload: encodeAmf0(...values),
});

/** `_result` for connect: NetConnection.Connect.Success. */
export function connectResult(txn: number, objectEncoding: number): RtmpMessage {
  return command(
    0,
    '_result',
    txn,
    { fmsVer: 'FMS/3,0,1,123', capabilities: 31 },
    {
      level: 'status',
      code: 'NetConnection.Connect.Success',
      description: 'Connection succeeded.',
      objectEncoding,
    },
  );
}

/** `_error` for connect. */
export function connectRejected(txn: number, description: string): RtmpMessage {
  return command(0, '_error', txn, null, {
    level: 'error',
    code: 'NetConnection.Connect.Rejected',
    description,
  });
}

export const createStreamResult = (txn: number, streamId: number): RtmpMessage =>
  command(0, '_result', txn, null, streamId);

/** onStatus on a stream, e.g. NetStream.Publish.Rejected. */
export function onStatus(
  streamId: number,
  level: 'status' | 'error',
  code: string,
  description: string,
): RtmpMessage {
  return command(streamId, 'onStatus', 0, null, { level, code, description });
}

/** A string property of an AMF object, or ''. */
export function prop(o: Amf0Value, key: string): string {
  if (o && typeof o === 'object' && !Array.isArray(o) && !(o instanceof Date)) {
    const v = o[key];
    return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
  }
  return '';
}
