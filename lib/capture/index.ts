export * from './commands.ts';
export * from './capture.ts';
export * from './store.ts';
export * from './trace-rules.ts';
export * from './live-trace.ts';
