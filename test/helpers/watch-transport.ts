/**
 * A transport for watch tests: `true` answers unless the host is down, the peer's probe script answers from a
 * function, the CPU/memory sample from a recorded-style text. Every call is recorded.
 */
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { type ExecResult, SshError, type Transport } from '../../src/hosts/ssh.js';

/** What the sample script prints on an idle 1-core host with 1 GiB, half of it available. */
export const IDLE_SAMPLE = 'cores 1\ncpu_ns 50000000 wall_ns 1000000000\nmeminfo 1073741824 536870912\n';

export class WatchTransport implements Transport {
  readonly calls: string[] = [];
  constructor(
    readonly down: Set<string> = new Set(),
    public scriptAnswer: (host: string, args: readonly string[]) => string = () => '',
  ) {}
  private result(stdout = '', exitCode = 0): ExecResult {
    return { exitCode, stdout, stderr: '', durationMs: 1 };
  }
  async exec(target: InventoryHost, argv: readonly string[]): Promise<ExecResult> {
    const sampling = argv.includes('persona-sample');
    this.calls.push(`${target.name}: ${sampling ? 'sample' : argv.join(' ')}`);
    if (this.down.has(target.name)) throw new SshError('timeout', target.name, `${target.name}: no answer`);
    return this.result(sampling ? IDLE_SAMPLE : '');
  }
  async script(target: InventoryHost, _s: string, args: readonly string[] = []): Promise<ExecResult> {
    this.calls.push(`${target.name}: script ${args.join(' ')}`);
    if (this.down.has(target.name)) throw new SshError('refused', target.name, `${target.name}: refused`);
    return this.result(this.scriptAnswer(target.name, args));
  }
  async run(target: InventoryHost, argv: readonly string[]): Promise<ExecResult> {
    return await this.exec(target, argv);
  }
  async rsyncShell(): Promise<{ rsh: string; host: string }> {
    throw new Error('not in watch tests');
  }
  async close(): Promise<void> {}
}
