// The machine a bench ran on, recorded beside its results: timings only compare between runs
// on like machines and like runtime versions, and a busy machine explains a slow run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { round } from './stats.js';

// A type, not an interface, so that it passes where a bench takes Record<string, unknown>.
export type MachineInfo = {
  node: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  onnxruntime: string;
  /** Only for benches that also run onnxruntime-web. */
  onnxruntimeWeb?: string;
  date: string;
  /** 1-minute load average when the run started: above the core count, others shared the CPU. */
  loadAverage: number;
};

/** The version of an installed package, read from its package.json under node_modules. */
export function packageVersion(name: string): string {
  return (JSON.parse(fs.readFileSync(`node_modules/${name}/package.json`, 'utf8')) as { version: string }).version;
}

/** Describes this machine now; `web` adds onnxruntime-web's version. */
export function machineInfo(options: { web?: boolean } = {}): MachineInfo {
  return {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.arch()}`,
    onnxruntime: packageVersion('onnxruntime-node'),
    ...(options.web ? { onnxruntimeWeb: packageVersion('onnxruntime-web') } : {}),
    date: new Date().toISOString().slice(0, 10),
    loadAverage: round(os.loadavg()[0]),
  };
}
