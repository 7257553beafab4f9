/**
 * One side of a relayed RTMP session (the client, or the origin): its socket, the chunk stream
 * in each direction, and the protocol control that stays on this side — chunk size, window
 * acknowledgements, peer bandwidth and ping answers are never relayed. Also why the socket is
 * paused (back-pressure from the other side, pacing), so that one reason ending does not
 * resume a socket another still holds.
 */
import type { Socket } from 'node:net';
import {
  ChunkDecoder,
  ChunkEncoder,
  control,
  MSG_SET_CHUNK_SIZE,
  MSG_SET_PEER_BANDWIDTH,
  MSG_USER_CONTROL,
  MSG_WINDOW_ACK_SIZE,
  UC_PING_REQUEST,
  UC_PING_RESPONSE,
  type RtmpMessage,
} from './chunk.js';

export class Leg {
  private readonly decoder: ChunkDecoder;
  private readonly encoder = new ChunkEncoder();
  /** The peer's Window Acknowledgement Size: acknowledge after this many bytes. */
  private ackWindow = 0;
  private lastAck = 0;
  private lastPeerBandwidth = 0;
  private readonly pausedBy = new Set<string>();

  constructor(
    readonly socket: Socket,
    maxMessageBytes: number,
  ) {
    this.decoder = new ChunkDecoder(maxMessageBytes);
  }

  /**
   * Decodes bytes from this side and handles its protocol control and pings; returns the
   * messages the session acts on (commands, media, data, the other user control events).
   */
  receive(chunk: Buffer): { messages: RtmpMessage[]; error?: string } {
    const { messages, error } = this.decoder.push(chunk);
    const rest: RtmpMessage[] = [];
    for (const m of messages) {
      if (
        m.typeId >= MSG_SET_CHUNK_SIZE &&
        m.typeId <= MSG_SET_PEER_BANDWIDTH &&
        m.typeId !== MSG_USER_CONTROL
      ) {
        if (m.typeId === MSG_WINDOW_ACK_SIZE && m.payload.length >= 4)
          this.ackWindow = m.payload.readUInt32BE(0);
        if (m.typeId === MSG_SET_PEER_BANDWIDTH && m.payload.length >= 4) {
          // The receiver of Set Peer Bandwidth answers with its window when it changes.
          const size = m.payload.readUInt32BE(0);
          if (size !== this.lastPeerBandwidth) {
            this.lastPeerBandwidth = size;
            this.send(control.windowAckSize(size));
          }
        }
        continue;
      }
      if (
        m.typeId === MSG_USER_CONTROL &&
        m.payload.length >= 6 &&
        m.payload.readUInt16BE(0) === UC_PING_REQUEST
      ) {
        this.send(control.userControl(UC_PING_RESPONSE, m.payload.readUInt32BE(2)));
        continue;
      }
      rest.push(m);
    }
    const received = this.decoder.bytesIn;
    if (this.ackWindow > 0 && received - this.lastAck >= this.ackWindow) {
      this.lastAck = received;
      this.send(control.ack(received));
    }
    return { messages: rest, error };
  }

  /** Chunks and writes a message; false when the socket's buffer is full (wait for 'drain'). */
  send(m: RtmpMessage): boolean {
    if (this.socket.destroyed) return true;
    return this.socket.write(this.encoder.encode(m));
  }

  /** Tells the peer our chunk size, then uses it. */
  setChunkSize(size: number): void {
    this.send(control.setChunkSize(size));
    this.encoder.chunkSize = size;
  }

  isPausedBy(why: string): boolean {
    return this.pausedBy.has(why);
  }

  pause(why: string): void {
    this.pausedBy.add(why);
    this.socket.pause();
  }

  /** Drops one reason; the socket resumes when none is left. */
  unpause(why: string): void {
    if (this.pausedBy.delete(why) && this.pausedBy.size === 0 && !this.socket.destroyed) this.socket.resume();
  }
}
