import type { CommandSpec } from '../cli.ts';
import { parseCommand } from './parse.ts';
import { predict } from './predict.ts';
import { rules } from './rules.ts';
import { tour } from './tour.ts';
import { trace } from './trace.ts';

export const COMMANDS: Record<string, CommandSpec> = {
  rules,
  predict,
  parse: parseCommand,
  trace,
  tour,
};
