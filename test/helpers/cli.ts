import { main, type Io } from '../../scripts/cli.ts';

/** Run the CLI in this process with argv, capturing what it prints. */
export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (t) => { out += `${t}\n`; }, err: (t) => { err += `${t}\n`; }, write: (t) => { out += t; } };
  const code = await main(argv, io);
  return { code, out, err };
}
