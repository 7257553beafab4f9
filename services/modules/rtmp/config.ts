/**
 * The RTMP relay's config (docs/dblb-rtmp.md): origins with app / stream-key patterns, the
 * instance's bandwidth budget (CanHandle), and `limits` (publishers and players per app,
 * bandwidth per stream, time and size bounds). `limits` may be left out: every field has a default.
 */
import { z } from 'zod';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'use host:port');

export const rtmpLimitsSchema = z
  .object({
    /** Concurrent publishers and players per app (glob); the first matching entry applies; 0 = no limit. */
    apps: z
      .array(
        z
          .object({
            app: z.string().min(1),
            maxPublishers: z.number().int().min(0).max(1_000_000).default(0),
            maxPlayers: z.number().int().min(0).max(1_000_000).default(0),
          })
          .strict(),
      )
      .max(256)
      .default([]),
    /** Media bitrate per connection and stream (kbit/s; 0 = no limit): publishers and players are paced to it. */
    streamBandwidthKbps: z.number().min(0).max(10_000_000).default(0),
    /** C0/C1 and C2 must arrive within this time. */
    handshakeTimeoutMs: z.number().int().min(50).max(120_000).default(5_000),
    /** From the handshake to `publish` / `play` (and the origin's answers) at most. */
    preambleTimeoutMs: z.number().int().min(50).max(120_000).default(10_000),
    /** A message larger than this closes the connection (RTMP allows 16 MiB). */
    maxMessageBytes: z
      .number()
      .int()
      .min(1024)
      .max(0xffffff)
      .default(4 * 1024 * 1024),
    connectTimeoutMs: z.number().int().min(50).max(120_000).default(3_000),
    /** No byte in either direction for this long closes the session (0 = never). */
    idleTimeoutMs: z.number().int().min(0).max(86_400_000).default(60_000),
  })
  .strict();

export const rtmpConfigSchema = z
  .object({
    origins: z
      .array(
        z
          .object({
            name: z.string().min(1).max(64),
            address: hostPort,
            apps: z.array(z.string().min(1)).default(['*']),
            streams: z.array(z.string().min(1)).default(['*']),
          })
          .strict(),
      )
      .max(256)
      .default([]),
    maxBandwidthMbps: z.number().min(0).max(1_000_000).default(0),
    limits: rtmpLimitsSchema.optional(),
  })
  .strict();

export type RtmpConfig = z.output<typeof rtmpConfigSchema>;
export type RtmpLimits = z.output<typeof rtmpLimitsSchema>;
export type RtmpOrigin = RtmpConfig['origins'][number];

/** The config's limits with every default filled in. */
export const limitsOf = (c: RtmpConfig): RtmpLimits => c.limits ?? rtmpLimitsSchema.parse({});
