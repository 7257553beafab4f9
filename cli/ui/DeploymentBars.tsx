/**
 * Each module type's deployment: a line with the phase and rollout step, then each version's
 * traffic weight as a bar. Cut to `maxLines` lines.
 */
import { Box, Text } from 'ink';
import type { ReactNode } from 'react';
import { bar, fit } from './text-layout.js';
import type { DeploymentView } from './top-model.js';

export interface DeploymentBarsProps {
  deployments: readonly DeploymentView[];
  width: number;
  maxLines: number;
}

/** How many lines the deployments take uncut. */
export function deploymentLineCount(deployments: readonly DeploymentView[]): number {
  return deployments.reduce((n, d) => n + 1 + d.versions.length, 0);
}

const PHASE_COLORS: Readonly<Record<string, string>> = {
  PROGRESSING: 'cyan',
  PAUSED: 'yellow',
  ROLLED_BACK: 'red',
  ABORTED: 'red',
  PROMOTED: 'green',
};

export function DeploymentBars({ deployments, width, maxLines }: DeploymentBarsProps) {
  const barWidth = Math.max(4, Math.min(30, width - 28));
  const lines: Array<{ key: string; node: ReactNode }> = [];
  for (const d of deployments) {
    lines.push({
      key: d.type,
      node: (
        <Text wrap="truncate">
          <Text bold>{d.type}</Text>
          {'  '}
          <Text color={PHASE_COLORS[d.phase]}>
            {fit(`${d.phase}${d.step ? `  step ${d.step}` : ''}`, width - d.type.length - 2)}
          </Text>
        </Text>
      ),
    });
    for (const v of d.versions) {
      const label = `  ${fit(v.version, 8)} `;
      const tail = ` ${String(Math.round(v.weight)).padStart(3)} %${v.role ? `  ${v.role}` : ''}`;
      lines.push({
        key: `${d.type}@${v.version}`,
        node: (
          <Text wrap="truncate">
            {label}
            <Text color={v.role === 'target' ? 'cyan' : 'green'}>{bar(v.weight, barWidth)}</Text>
            {fit(tail, Math.max(0, width - label.length - barWidth))}
          </Text>
        ),
      });
    }
  }
  return (
    <Box flexDirection="column">
      {lines.slice(0, maxLines).map((l) => (
        <Box key={l.key}>{l.node}</Box>
      ))}
    </Box>
  );
}
