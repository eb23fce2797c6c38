export * from './types.ts';
export * from './plan.ts';
export { runScaleSweep, ScaleRootError, PROBE_SCRIPT } from './sweep.ts';
export { formatScaleTable, scaleTable, scaleLegend, scaleNotes, type ScaleTable } from './format.ts';
