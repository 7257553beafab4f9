/**
 * Message stream ids between the client's numbering (the relay answered its createStream) and
 * the origin's (the origin answered the replayed createStream): the id in a message header,
 * and in the payload of stream user-control events (StreamBegin, SetBufferLength…).
 */
import { MSG_USER_CONTROL, type RtmpMessage } from './chunk.js';

export class StreamIds {
  private readonly toOrigin = new Map<number, number>();
  private readonly toClient = new Map<number, number>();

  /** The client's stream `local` is the origin's `origin`. */
  link(local: number, origin: number): void {
    this.toOrigin.set(local, origin);
    this.toClient.set(origin, local);
  }

  /** A client message in the origin's numbering (unknown ids pass unchanged). */
  forOrigin(m: RtmpMessage): RtmpMessage {
    return mapped(m, this.toOrigin);
  }

  /** An origin message in the client's numbering. */
  forClient(m: RtmpMessage): RtmpMessage {
    return mapped(m, this.toClient);
  }
}

function mapped(m: RtmpMessage, map: ReadonlyMap<number, number>): RtmpMessage {
  if (m.typeId === MSG_USER_CONTROL && m.payload.length >= 6) {
    const id = m.payload.readUInt32BE(2);
    const to = map.get(id);
    if (to === undefined || to === id) return m;
    const p = Buffer.from(m.payload);
    p.writeUInt32BE(to, 2);
    return { ...m, payload: p };
  }
  const to = map.get(m.streamId);
  return to === undefined || to === m.streamId ? m : { ...m, streamId: to };
}
