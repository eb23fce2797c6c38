export * from './commands.ts';
export * from './capture.ts';
export * from './store.ts';
