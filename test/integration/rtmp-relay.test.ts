/**
 * The RTMP relay with real software: nginx-rtmp origins, ffmpeg publishing a generated stream
 * through the relay, ffprobe / ffmpeg reading it back through the relay and straight from the
 * origin; routing by app and stream key; publisher and player limits per app; bandwidth pacing
 * per stream; stats (publishers, players, bytes, bitrate).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rtmpPlugin } from '../../services/modules/rtmp/plugin.js';
import { createDbHarness, skipNotice, waitFor } from './dblb-fixture.js';
import { createRtmpHarness, rtmpTools, type Origin } from './rtmp-fixture.js';

const available = rtmpTools.nginx && rtmpTools.ffmpeg;
if (!available) skipNotice('nginx with the RTMP module, or ffmpeg', 'nginx libnginx-mod-rtmp ffmpeg');

const codecs = (streams: Array<Record<string, unknown>>) => streams.map((s) => s.codec_name).sort();

describe.skipIf(!available)('RTMP relay with nginx-rtmp and ffmpeg', () => {
  const h = createDbHarness();
  const rh = createRtmpHarness();
  let main: Origin;
  let events: Origin;
  let port = 0;
  let rt: Awaited<ReturnType<typeof h.startInstance>>['rt'];

  const custom = () => rt.statsSnapshot().custom;

  beforeAll(async () => {
    [main, events] = await Promise.all([rh.startOrigin(), rh.startOrigin()]);
    const inst = await h.startInstance(rtmpPlugin, {
      origins: [
        { name: 'main', address: main.address, apps: ['live', 'vod'] },
        { name: 'events', address: events.address, apps: ['live'], streams: ['event-*'] },
      ],
      limits: { apps: [{ app: 'vod', maxPublishers: 1, maxPlayers: 1 }] },
    });
    rt = inst.rt;
    port = inst.port;
  }, 30_000);

  afterAll(async () => {
    await rh.closeAll();
    await h.closeAll();
  }, 30_000);

  it('relays ffmpeg publishing through it; ffprobe and ffmpeg read the stream back through it and from the origin', async () => {
    const pub = rh.publish(`rtmp://127.0.0.1:${port}/live/main-1`, 6);
    await waitFor(
      'the publisher to be relayed',
      () => Number(custom()['stream:live/main-1:bytes_in']) > 0,
      10_000,
    );
    const [viaRelay, direct, read] = await Promise.all([
      rh.probe(`rtmp://127.0.0.1:${port}/live/main-1`),
      rh.probe(`rtmp://${main.address}/live/main-1`),
      rh.read(`rtmp://127.0.0.1:${port}/live/main-1`, 2),
    ]);
    expect(viaRelay.error).toBeUndefined();
    expect(codecs(viaRelay.streams)).toEqual(['aac', 'h264']);
    expect(viaRelay.streams.find((s) => s.codec_type === 'video')?.width).toBe(320);
    // The origin got the stream under the same app and key: nothing it needs was rewritten.
    expect(codecs(direct.streams)).toEqual(['aac', 'h264']);
    expect(read.frames).toBeGreaterThanOrEqual(25);
    const during = custom();
    expect(Number(during.rtmp_publishers)).toBe(1);
    expect(Number(during['stream:live/main-1:kbps'])).toBeGreaterThan(0);
    expect(Number(during['stream:live/main-1:bytes_out'])).toBeGreaterThan(0);
    const end = await pub.done;
    expect(end.code, end.stderr).toBe(0);
    await waitFor('the publisher to be gone', () => custom().rtmp_publishers === '0', 5_000);
    expect(Number(custom().rtmp_players)).toBe(0);
  });

  it('routes by stream key: live/event-* goes to the events origin', async () => {
    const pub = rh.publish(`rtmp://127.0.0.1:${port}/live/event-7`, 5);
    await waitFor(
      'the publisher to be relayed',
      () => Number(custom()['stream:live/event-7:bytes_in']) > 0,
      10_000,
    );
    const [direct, viaRelay] = await Promise.all([
      rh.probe(`rtmp://${events.address}/live/event-7`),
      rh.probe(`rtmp://127.0.0.1:${port}/live/event-7`),
    ]);
    expect(codecs(direct.streams), direct.error).toEqual(['aac', 'h264']);
    expect(codecs(viaRelay.streams), viaRelay.error).toEqual(['aac', 'h264']);
    expect((await pub.done).code).toBe(0);
  });

  it('limits publishers and players per app, with an error status ffmpeg reports', async () => {
    const first = rh.publish(`rtmp://127.0.0.1:${port}/vod/one`, 5);
    await waitFor('the first publisher', () => custom()['stream:vod/one:publishers'] === '1', 10_000);
    const second = await rh.publish(`rtmp://127.0.0.1:${port}/vod/two`, 2).done;
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('app vod has its 1 publishers');
    const player = rh.read(`rtmp://127.0.0.1:${port}/vod/one`, 1);
    await waitFor('the first player', () => custom()['stream:vod/one:players'] === '1', 10_000);
    const refused = await rh.probe(`rtmp://127.0.0.1:${port}/vod/one`);
    expect(refused.error).toContain('Server error: app vod has its 1 players');
    expect((await player).frames).toBeGreaterThan(0);
    expect((await first.done).code).toBe(0);
    expect(Number(custom().rtmp_refused_publisher_limit)).toBe(1);
    expect(Number(custom().rtmp_refused_player_limit)).toBe(1);
  });

  it('paces a publisher to the bandwidth limit per stream', async () => {
    const slow = await h.startInstance(rtmpPlugin, {
      origins: [{ name: 'main', address: main.address }],
      limits: { streamBandwidthKbps: 50 },
    });
    const pub = rh.publish(`rtmp://127.0.0.1:${slow.port}/live/paced`, 4);
    const t0 = Date.now();
    await waitFor('pacing', () => Number(slow.rt.statsSnapshot().custom.rtmp_paced) > 0, 15_000);
    await new Promise((r) => setTimeout(r, 2_000));
    const bytes = Number(slow.rt.statsSnapshot().custom['stream:live/paced:bytes_in']);
    const seconds = (Date.now() - t0) / 1000;
    // 50 kbit/s plus the burst (at least 64 KiB) the bucket starts with; unpaced it is ~35 KB/s.
    expect(bytes).toBeLessThanOrEqual((50_000 / 8) * seconds + 64 * 1024 + 16 * 1024);
    pub.child.kill('SIGTERM');
    await pub.done;
  });

  it('deep health checks do the RTMP handshake with each origin', async () => {
    const cfg = rtmpPlugin.configSchema.parse({
      origins: [
        { name: 'main', address: main.address },
        { name: 'gone', address: '127.0.0.1:1' },
      ],
    });
    const r = await rtmpPlugin.healthChecks(cfg, true);
    expect(r['backend:main']).toMatchObject({
      ok: true,
      message: expect.stringMatching(/^RTMP handshake in \d+ ms$/),
    });
    expect(r['backend:gone'].ok).toBe(false);
  });
});
