export * from './runner.ts';
export * from './packages.ts';
