/**
 * One RTMP client through the relay (docs/dblb-rtmp.md "RTMP"):
 *
 * 1. handshake: C0/C1 → S0/S1/S2 → C2 within `handshakeTimeoutMs`;
 * 2. preamble: decode the client's chunk stream, answer `connect` and `createStream` locally,
 *    keep every message, until `publish` or `play` names the stream (within `preambleTimeoutMs`);
 * 3. route by app and stream key, check the app's publisher / player limit, connect to the
 *    origin and handshake with it, replay the kept messages unchanged (waiting for the origin's
 *    answers to connect and createStream, whose duplicates the client never sees);
 * 4. relay messages both ways, re-chunked per side, mapping message stream ids between the
 *    client's and the origin's numbering; protocol control stays per side (chunk size,
 *    acknowledgements, pings). Media is counted per stream and paced to the bandwidth limit.
 */
import type { Socket } from 'node:net';
import type { Clock, TimerHandle } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import type { ConnectionInfo } from '../runtime/plugin.js';
import type { StatsCollector } from '../runtime/stats.js';
import {
  control,
  MSG_AUDIO,
  MSG_DATA_AMF0,
  MSG_DATA_AMF3,
  MSG_USER_CONTROL,
  MSG_VIDEO,
  UC_SET_BUFFER_LENGTH,
  UC_STREAM_BEGIN,
  UC_STREAM_DRY,
  UC_STREAM_EOF,
  UC_STREAM_IS_RECORDED,
  type RtmpMessage,
} from './chunk.js';
import {
  connectRejected,
  connectResult,
  createStreamResult,
  onStatus,
  parseCommand,
  prop,
  type Command,
} from './commands.js';
import { limitsOf, type RtmpConfig, type RtmpLimits } from './config.js';
import { HANDSHAKE_BYTES, serverReply } from './handshake.js';
import { Leg } from './leg.js';
import { StreamIds } from './stream-ids.js';
import { connectOrigin } from './origin.js';
import {
  Pacer,
  rankOrigins,
  streamName,
  type Role,
  type StreamLease,
  type StreamRegistry,
} from './streams.js';

export interface RtmpDeps {
  clock: Clock;
  logger: Logger;
  stats: StatsCollector;
  streams: StreamRegistry;
  /** Sessions per origin name (least-loaded choice between equals). */
  originLoad: Map<string, number>;
  config(): RtmpConfig;
  rateLimited(clientAddress: string): boolean;
}

const OUR_CHUNK_SIZE = 4096;
const OUR_WINDOW = 2_500_000;
/** Messages kept before `publish` / `play`, and bytes kept while the origin is being reached. */
const MAX_PREAMBLE_MESSAGES = 256;
const MAX_PREAMBLE_BYTES = 1024 * 1024;
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

type Phase = 'handshake' | 'c2' | 'preamble' | 'connecting' | 'replay' | 'relay' | 'refusing' | 'closed';

/** Takes over an accepted RTMP client. */
export function serveRtmp(client: Socket, info: ConnectionInfo, deps: RtmpDeps): void {
  new RtmpSession(client, info, deps).start();
}

class RtmpSession {
  private phase: Phase = 'handshake';
  private readonly limits: RtmpLimits;
  private readonly t0: number;
  private hs: Buffer = Buffer.alloc(0);
  private timer: TimerHandle | null = null;
  private readonly clientLeg: Leg;
  private originLeg: Leg | null = null;
  private originName = '';
  private app = '';
  private stream = '';
  private role: Role | null = null;
  private objectEncoding = 0;
  private connectTxn = -1;
  /** Messages kept for the origin, and where the replay is. */
  private readonly kept: RtmpMessage[] = [];
  private keptBytes = 0;
  private replayAt = 0;
  private waiting: { kind: 'connect' | 'createStream'; txn: number; localId: number } | null = null;
  /** createStream transactions answered locally → the stream id the client got. */
  private readonly localStreams = new Map<number, number>();
  private nextLocalId = 1;
  private readonly ids = new StreamIds();
  /** Client messages that arrived while the origin was being reached. */
  private pending: RtmpMessage[] = [];
  private pendingBytes = 0;
  private lease: StreamLease | null = null;
  private pacer: Pacer | null = null;
  private counted = false;

  constructor(
    private readonly client: Socket,
    private readonly info: ConnectionInfo,
    private readonly deps: RtmpDeps,
  ) {
    this.limits = limitsOf(deps.config());
    this.t0 = deps.clock.now();
    this.clientLeg = new Leg(client, this.limits.maxMessageBytes);
  }

  /** A method, not a field read, so TypeScript does not narrow it away across calls. */
  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  start(): void {
    const c = this.client;
    c.on('data', (chunk: Buffer) => this.onClientData(chunk));
    c.on('close', () => this.close('client closed'));
    c.on('end', () => this.close('client ended', true));
    c.on('drain', () => this.originLeg?.unpause('backpressure'));
    c.resume();
    this.arm(this.limits.handshakeTimeoutMs, 'handshake timeout');
  }

  private arm(ms: number, why: string): void {
    this.timer?.cancel();
    this.timer = this.deps.clock.setTimeout(() => this.fail(why), ms);
  }

  private count(ok: boolean): void {
    if (this.counted) return;
    this.counted = true;
    this.deps.stats.request(ok, this.deps.clock.now() - this.t0);
  }

  /**
   * Closes both sides and releases what the session holds (idempotent). A peer that ended
   * cleanly gets its last bytes flushed to the other side (ended, destroyed after 2 s at most);
   * anything else destroys both at once.
   */
  private close(why: string, graceful = false): void {
    if (this.phase === 'closed') return;
    const was = this.phase;
    this.phase = 'closed';
    this.timer?.cancel();
    if (graceful) {
      for (const s of [this.client, this.originLeg?.socket]) {
        if (!s || s.destroyed) continue;
        s.end();
        const t = this.deps.clock.setTimeout(() => s.destroy(), 2_000);
        s.once('close', () => t.cancel());
      }
    } else {
      this.client.destroy();
      this.originLeg?.socket.destroy();
    }
    this.lease?.release();
    if (this.originName)
      this.deps.originLoad.set(this.originName, (this.deps.originLoad.get(this.originName) ?? 1) - 1);
    if (was !== 'relay') this.count(false);
    this.deps.logger.debug(`RTMP session closed: ${why}`, { app: this.app, stream: this.stream });
  }

  private fail(why: string): void {
    this.deps.stats.count(`rtmp_closed_${why.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}`.slice(0, 48));
    this.close(why);
  }

  /** Sends an error onStatus (or connect _error), then closes shortly after. */
  private refuse(m: RtmpMessage, counter: string, why: string): void {
    this.deps.stats.count(counter);
    this.deps.logger.info(`RTMP ${why}`, {
      app: this.app,
      stream: this.stream,
      client: this.info.clientAddress,
    });
    this.phase = 'refusing';
    this.clientLeg.send(m);
    this.timer?.cancel();
    this.timer = this.deps.clock.setTimeout(() => this.close(why), 200);
  }

  // ---- client side ---------------------------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'handshake' || this.phase === 'c2') {
      this.hs = this.hs.length ? Buffer.concat([this.hs, chunk]) : chunk;
      if (this.phase === 'handshake') {
        if (this.hs[0] !== 3) return this.fail('bad version');
        if (this.hs.length < 1 + HANDSHAKE_BYTES) return;
        const r = serverReply(this.hs, this.deps.clock.now());
        if (!r.ok) return this.fail('bad handshake');
        this.client.write(r.reply);
        this.hs = this.hs.subarray(1 + HANDSHAKE_BYTES);
        this.phase = 'c2';
      }
      if (this.hs.length < HANDSHAKE_BYTES) return;
      const rest = this.hs.subarray(HANDSHAKE_BYTES);
      this.hs = Buffer.alloc(0);
      this.phase = 'preamble';
      this.arm(this.limits.preambleTimeoutMs, 'preamble timeout');
      if (rest.length === 0) return;
      chunk = rest;
    }
    const { messages, error } = this.clientLeg.receive(chunk);
    for (const m of messages) {
      if (this.isClosed()) return;
      this.onClientMessage(m);
    }
    if (error && !this.isClosed()) this.fail('client protocol error');
  }

  private onClientMessage(m: RtmpMessage): void {
    if (m.typeId === MSG_USER_CONTROL) return this.onClientUserControl(m);
    switch (this.phase) {
      case 'preamble':
        return this.preamble(m);
      case 'connecting':
      case 'replay':
        this.pendingBytes += m.payload.length;
        if (this.pendingBytes > MAX_PENDING_BYTES) return this.fail('pending overflow');
        this.pending.push(m);
        return;
      case 'relay':
        return this.relayToOrigin(m);
      default:
        return;
    }
  }

  /** Of the client's user control events only Set Buffer Length (a player's) goes to the origin. */
  private onClientUserControl(m: RtmpMessage): void {
    if (m.payload.length < 10 || m.payload.readUInt16BE(0) !== UC_SET_BUFFER_LENGTH) return;
    if (this.phase === 'relay') this.relayToOrigin(m);
    else if (this.phase === 'preamble') this.keep(m);
    else if (this.phase === 'connecting' || this.phase === 'replay') this.pending.push(m);
  }

  private keep(m: RtmpMessage): void {
    this.keptBytes += m.payload.length;
    if (this.kept.length >= MAX_PREAMBLE_MESSAGES || this.keptBytes > MAX_PREAMBLE_BYTES)
      return this.fail('preamble too long');
    this.kept.push(m);
  }

  private preamble(m: RtmpMessage): void {
    const cmd = parseCommand(m);
    this.keep(m);
    if (!cmd || this.isClosed()) return;
    switch (cmd.name) {
      case 'connect':
        return this.onConnect(cmd);
      case 'createStream': {
        const id = this.nextLocalId++;
        this.localStreams.set(cmd.txn, id);
        this.clientLeg.send(createStreamResult(cmd.txn, id));
        return;
      }
      case 'publish':
      case 'play':
        return void this.route(cmd, m.streamId, cmd.name === 'publish' ? 'publisher' : 'player');
      default:
        return;
    }
  }

  private onConnect(cmd: Command): void {
    if (this.app) return;
    this.connectTxn = cmd.txn;
    this.app = prop(cmd.object, 'app').replace(/\/+$/, '');
    this.objectEncoding = Number(prop(cmd.object, 'objectEncoding')) || 0;
    if (this.deps.rateLimited(this.info.clientAddress))
      return this.refuse(connectRejected(cmd.txn, 'rate limited'), 'rate_limited', 'connect rate limited');
    this.clientLeg.send(control.windowAckSize(OUR_WINDOW));
    this.clientLeg.send(control.setPeerBandwidth(OUR_WINDOW, 2));
    this.clientLeg.setChunkSize(OUR_CHUNK_SIZE);
    this.clientLeg.send(connectResult(cmd.txn, this.objectEncoding));
  }

  // ---- routing -------------------------------------------------------------------------------

  private async route(cmd: Command, localStreamId: number, role: Role): Promise<void> {
    this.phase = 'connecting';
    this.role = role;
    this.stream = streamName(typeof cmd.args[0] === 'string' ? cmd.args[0] : '');
    const rejected = (code: string, why: string) => onStatus(localStreamId, 'error', code, why);
    const failCode = role === 'publisher' ? 'NetStream.Publish.Rejected' : 'NetStream.Play.Failed';
    if (!this.app)
      return this.refuse(rejected(failCode, 'connect first'), 'rtmp_protocol_violation', 'no connect');
    const lease = this.deps.streams.admit(role, this.app, this.stream, this.limits);
    if ('refused' in lease)
      return this.refuse(rejected(failCode, lease.refused), `rtmp_refused_${role}_limit`, lease.refused);
    this.lease = lease;
    if (this.limits.streamBandwidthKbps > 0)
      this.pacer = new Pacer(this.limits.streamBandwidthKbps, this.deps.clock.now());
    const cfg = this.deps.config();
    const origins = rankOrigins(cfg.origins, this.app, this.stream, this.deps.originLoad);
    if (origins.length === 0) {
      const code = role === 'publisher' ? 'NetStream.Publish.BadName' : 'NetStream.Play.StreamNotFound';
      return this.refuse(
        rejected(code, `no origin serves ${this.app}/${this.stream}`),
        'rtmp_refused_no_origin',
        'no origin',
      );
    }
    const reasons: string[] = [];
    for (const o of origins) {
      const r = await connectOrigin(o.address, this.limits.connectTimeoutMs);
      if (this.isClosed()) {
        if (r.ok) r.socket.destroy();
        return;
      }
      if (!r.ok) {
        reasons.push(r.reason);
        this.deps.stats.count('rtmp_origin_connect_failed');
        continue;
      }
      this.originName = o.name;
      this.deps.originLoad.set(o.name, (this.deps.originLoad.get(o.name) ?? 0) + 1);
      return this.startOrigin(r.socket, r.rest);
    }
    this.refuse(
      rejected(failCode, `origin unavailable (${reasons.join('; ')})`),
      'rtmp_refused_origin_down',
      'origin down',
    );
  }

  private startOrigin(socket: Socket, rest: Buffer): void {
    this.originLeg = new Leg(socket, this.limits.maxMessageBytes);
    socket.on('data', (chunk: Buffer) => this.onOriginData(chunk));
    socket.on('close', () => this.close('origin closed'));
    socket.on('end', () => this.close('origin ended', true));
    socket.on('drain', () => this.clientLeg.unpause('backpressure'));
    this.originLeg.setChunkSize(OUR_CHUNK_SIZE);
    this.phase = 'replay';
    socket.resume();
    if (rest.length) this.onOriginData(rest);
    this.replay();
  }

  /** Sends kept messages in order, stopping at connect / createStream until the origin answers. */
  private replay(): void {
    while (this.phase === 'replay' && !this.waiting && this.replayAt < this.kept.length) {
      const m = this.kept[this.replayAt++];
      this.originLeg?.send(this.ids.forOrigin(m));
      const cmd = parseCommand(m);
      if (cmd?.name === 'connect') this.waiting = { kind: 'connect', txn: cmd.txn, localId: 0 };
      else if (cmd?.name === 'createStream')
        this.waiting = { kind: 'createStream', txn: cmd.txn, localId: this.localStreams.get(cmd.txn) ?? 0 };
    }
    if (this.phase !== 'replay' || this.waiting || this.replayAt < this.kept.length) return;
    this.phase = 'relay';
    this.timer?.cancel();
    this.timer = null;
    this.kept.length = 0;
    this.count(true);
    if (this.limits.idleTimeoutMs > 0) {
      this.client.setTimeout(this.limits.idleTimeoutMs, () => this.fail('idle'));
      this.originLeg?.socket.setTimeout(this.limits.idleTimeoutMs, () => this.fail('idle'));
    }
    const pending = this.pending;
    this.pending = [];
    for (const m of pending) if (this.phase === 'relay') this.onClientMessage(m);
  }

  // ---- origin side ---------------------------------------------------------------------------

  private onOriginData(chunk: Buffer): void {
    if (this.phase === 'closed' || !this.originLeg) return;
    const { messages, error } = this.originLeg.receive(chunk);
    for (const m of messages) {
      if (this.isClosed()) return;
      this.onOriginMessage(m);
    }
    if (error && !this.isClosed()) this.fail('origin protocol error');
  }

  private onOriginMessage(m: RtmpMessage): void {
    if (m.typeId === MSG_USER_CONTROL) return this.onOriginUserControl(m);
    const cmd = parseCommand(m);
    if (cmd && (cmd.name === '_result' || cmd.name === '_error')) {
      const w = this.waiting;
      if (w && cmd.txn === w.txn) return this.onAnswer(w, cmd);
      // Answers to what the relay answered itself never reach the client twice.
      if (cmd.txn === this.connectTxn || this.localStreams.has(cmd.txn)) return;
    }
    if (cmd?.name === 'onStatus' && prop(cmd.args[0] ?? null, 'level') === 'error')
      this.deps.stats.count('rtmp_origin_error_status');
    this.relayToClient(m);
  }

  private onAnswer(w: NonNullable<RtmpSession['waiting']>, cmd: Command): void {
    this.waiting = null;
    if (cmd.name === '_error') {
      const why = `origin refused ${w.kind}: ${prop(cmd.args[0] ?? null, 'description') || prop(cmd.args[0] ?? null, 'code')}`;
      const failCode = this.role === 'publisher' ? 'NetStream.Publish.Rejected' : 'NetStream.Play.Failed';
      return this.refuse(onStatus(this.lastLocalId(), 'error', failCode, why), 'rtmp_origin_refused', why);
    }
    if (w.kind === 'createStream') {
      const originId = typeof cmd.args[0] === 'number' ? cmd.args[0] : w.localId;
      this.ids.link(w.localId, originId);
    }
    this.replay();
  }

  private lastLocalId(): number {
    return Math.max(0, this.nextLocalId - 1);
  }

  /** Stream events go to the client (stream id mapped); pings were answered by the leg. */
  private onOriginUserControl(m: RtmpMessage): void {
    if (m.payload.length < 2) return;
    const event = m.payload.readUInt16BE(0);
    if (
      event === UC_STREAM_BEGIN ||
      event === UC_STREAM_EOF ||
      event === UC_STREAM_DRY ||
      event === UC_STREAM_IS_RECORDED
    )
      this.relayToClient(m);
  }

  // ---- relaying ------------------------------------------------------------------------------

  private relayToOrigin(m: RtmpMessage): void {
    if (!this.originLeg) return;
    if (!this.originLeg.send(this.ids.forOrigin(m))) this.clientLeg.pause('backpressure');
    if (this.role === 'publisher' && isMedia(m)) this.meter(this.clientLeg, m.payload.length);
  }

  private relayToClient(m: RtmpMessage): void {
    if (!this.clientLeg.send(this.ids.forClient(m))) this.originLeg?.pause('backpressure');
    if (this.role === 'player' && isMedia(m) && this.originLeg) this.meter(this.originLeg, m.payload.length);
  }

  /** Counts media bytes and paces the side they came from to the stream bandwidth limit. */
  private meter(source: Leg, bytes: number): void {
    this.lease?.count(bytes);
    if (!this.pacer) return;
    const delay = this.pacer.take(bytes, this.deps.clock.now());
    if (delay <= 0 || source.isPausedBy('pace')) return;
    this.deps.stats.count('rtmp_paced');
    source.pause('pace');
    this.deps.clock.setTimeout(() => source.unpause('pace'), delay);
  }
}

const isMedia = (m: RtmpMessage) =>
  m.typeId === MSG_AUDIO ||
  m.typeId === MSG_VIDEO ||
  m.typeId === MSG_DATA_AMF0 ||
  m.typeId === MSG_DATA_AMF3;
