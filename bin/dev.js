#!/usr/bin/env -S node --import tsx --disable-warning=ExperimentalWarning
// Runs mpctl from the TypeScript sources. oclif follows a present oclif.manifest.json to the
// compiled dist/ (stale or missing while developing), so the root plugin is loaded with
// ignoreManifest and finds its commands in cli/commands through tsx.
import { fileURLToPath } from 'node:url';
import { Config, Plugin, execute } from '@oclif/core';

process.env.NODE_ENV ??= 'development';
const root = fileURLToPath(new URL('..', import.meta.url));
const rootPlugin = new Plugin({ root, isRoot: true, ignoreManifest: true });
await rootPlugin.load();
const config = await Config.load({ root, plugins: new Map([[rootPlugin.name, rootPlugin]]) });
// Providing the root plugin skips the core plugins (plugin-help); load them as usual.
await config.loadPluginsAndCommands({ force: true });

await execute({ development: true, loadOptions: config });
