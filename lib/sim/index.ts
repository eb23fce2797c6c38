export * from './counts.ts';
export * from './split.ts';
export * from './stats.ts';
export * from './published.ts';
export * from './cost-model.ts';
