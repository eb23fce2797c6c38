export * from './private.ts';
export * from './lock.ts';
