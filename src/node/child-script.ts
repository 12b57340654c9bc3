// How to start one of shrink's own scripts (memory-probe, load-check-child) in a child Node
// process: from the compiled package, the .js beside the caller; from the TypeScript sources (tests,
// a clone run through tsx), the .ts beside it with tsx loaded, resolved from this file so it works
// from any working folder. tsx is a devDependency: compiled code never asks for it.
import { fileURLToPath } from 'node:url';

/**
 * The node arguments that run `name` (a script beside `callerUrl`, without extension), given the
 * caller's import.meta.url: compiled callers are .js files, source callers under tsx are .ts.
 */
export function childScriptArgs(callerUrl: string, name: string): string[] {
  if (new URL(callerUrl).pathname.endsWith('.ts')) {
    return ['--import', import.meta.resolve('tsx'), fileURLToPath(new URL(`./${name}.ts`, callerUrl))];
  }
  return [fileURLToPath(new URL(`./${name}.js`, callerUrl))];
}
