import type { CommandSpec } from '../cli.ts';
import { demo } from './demo.ts';
import { doctor, prefetch } from './doctor.ts';
import { capture, down, gc, status, traffic, up } from './lab.ts';
import { parseCommand } from './parse.ts';
import { predict } from './predict.ts';
import { rules } from './rules.ts';
import { scale } from './scale.ts';
import { tour } from './tour.ts';
import { trace } from './trace.ts';

export const COMMANDS: Record<string, CommandSpec> = {
  demo,
  up,
  down,
  status,
  gc,
  traffic,
  capture,
  doctor,
  prefetch,
  rules,
  predict,
  parse: parseCommand,
  trace,
  tour,
  scale,
};
