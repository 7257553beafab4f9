import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/oclif.js';

const REGENERATE =
  'stale command reference in README.md: run `npm run build && npm run manifest` and commit it';

/** Command ids ("module:config:get") from the README's generated `## \`mpctl …\`` headings. */
function readmeCommandIds(readme: string): string[] {
  const start = readme.indexOf('<!-- commands -->');
  const end = readme.indexOf('<!-- commandsstop -->');
  expect(
    start,
    'README.md needs the <!-- commands --> … <!-- commandsstop --> markers',
  ).toBeGreaterThanOrEqual(0);
  expect(end).toBeGreaterThan(start);
  const ids: string[] = [];
  for (const match of readme.slice(start, end).matchAll(/^## `mpctl ([^`]*)`/gm)) {
    // Words are the command; upper-case words and [OPTIONAL] ones are its arguments.
    const words = match[1].split(' ').filter((w) => /^[a-z][a-z0-9-]*$/.test(w));
    ids.push(words.join(':'));
  }
  return ids;
}

/** Commands of a plugin's published manifest (help, autocomplete). */
function pluginCommandIds(name: string): string[] {
  const manifest = JSON.parse(
    readFileSync(join(REPO_ROOT, 'node_modules', name, 'oclif.manifest.json'), 'utf8'),
  ) as {
    commands: Record<string, { hidden?: boolean }>;
  };
  return Object.entries(manifest.commands)
    .filter(([, c]) => !c.hidden)
    .map(([id]) => id);
}

describe('README command reference', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'oclif.manifest.json'), 'utf8')) as {
    commands: Record<string, { hidden?: boolean; summary?: string }>;
  };
  const own = Object.entries(manifest.commands).filter(([, c]) => !c.hidden);

  it('documents every command of the manifest, and nothing else', () => {
    const documented = readmeCommandIds(readme);
    const plugins = [
      ...pluginCommandIds('@oclif/plugin-help'),
      ...pluginCommandIds('@oclif/plugin-autocomplete'),
    ];
    const expected = [...own.map(([id]) => id), ...plugins].sort();
    expect(documented.slice().sort(), REGENERATE).toEqual(expected);
  });

  it("shows each command's current summary", () => {
    for (const [id, command] of own) {
      const heading = readme.indexOf(`## \`mpctl ${id.split(':').join(' ')}`);
      const section = readme.slice(heading, readme.indexOf('\n## ', heading + 3));
      if (command.summary) expect(section, `${REGENERATE} (${id})`).toContain(command.summary.split('\n')[0]);
    }
  });
});

describe('shell completion', () => {
  it('mpctl autocomplete --help works (@oclif/plugin-autocomplete is loaded)', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['bin/run.js', 'autocomplete', '--help'], {
      cwd: REPO_ROOT,
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(stdout).toContain('Display autocomplete installation instructions.');
    expect(stdout).toContain('$ mpctl autocomplete [SHELL]');
  });
});
