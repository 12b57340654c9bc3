// `shrink compress IN -o OUT.shrink --recipe deep-compression|FILE --data D`: the Deep Compression
// pipeline as one command. A thin shell over the recipe runner (run-command.ts executeRecipe, which
// calls pipeline/run-recipe.ts): the built-in recipe (pipeline/recipes/deep-compression.ts) with
// --sparsity/--bits/--epochs over its defaults, or a recipe file that ends with a pack step. --data
// is training arrays: the steps fine-tune on them; the stage table is measured on --test-data
// (held-out arrays), else on the first --samples of --data.
import type { Command } from 'commander';
import { parseRecipe, type Recipe } from '../pipeline/recipe.js';
import { DEEP_COMPRESSION, deepCompressionRecipe } from '../pipeline/recipes/deep-compression.js';
import { UsageError } from './errors.js';
import { readTextFile } from './input-files.js';
import type { CliContext } from './main.js';
import { wholeNumber } from './options.js';
import { cliRecipeContext } from './recipe-context.js';
import { executeRecipe, formatRun, type RunFlags } from './run-command.js';
import { LABELS_KEY } from './training-data.js';

interface CompressFlags extends RunFlags {
  recipe: string;
  sparsity?: string;
  bits?: string;
  epochs?: string;
}

const BUILT_IN = 'deep-compression';

export function registerCompress(program: Command, context: CliContext): void {
  program
    .command('compress')
    .description('Deep Compression: prune with recovery, cluster with centroid fine-tuning, pack; accuracy and size after every stage')
    .argument('<input>', 'the ONNX model to compress')
    .requiredOption('-o, --output <file>', 'where to write the pack (.shrink)')
    .option('--recipe <name|file>', `'${BUILT_IN}' (prune magnitude ${DEEP_COMPRESSION.sparsity} per layer, ${DEEP_COMPRESSION.pruneEpochs} epochs -> cluster ${DEEP_COMPRESSION.bits} bits per tensor, ${DEEP_COMPRESSION.clusterEpochs} epoch -> pack), or a recipe file ending with {"pack": {}}`, BUILT_IN)
    .requiredOption('--data <file>', `training arrays: an .npz keyed by input name (plus '${LABELS_KEY}') or an .npy for a one-input model`)
    .option('--labels <file>', 'class ids of --data (.npy of integers): fine-tuning and accuracy; without labels the steps distil from the input')
    .option('--scale <factor>', 'multiply input values by this, e.g. 1/255 for bytes 0-255')
    .option('--sparsity <s>', `${BUILT_IN}: share of each layer's weights zeroed (default ${DEEP_COMPRESSION.sparsity})`)
    .option('--bits <n>', `${BUILT_IN}: codebook bits per tensor (default ${DEEP_COMPRESSION.bits})`)
    .option('--epochs <n>', `${BUILT_IN}: recovery epochs after pruning (default ${DEEP_COMPRESSION.pruneEpochs}); the centroids get half, at least 1`)
    .option('--test-data <file>', 'held-out arrays (same form and --scale as --data) every stage is measured on (default: the first --samples of --data)')
    .option('--test-labels <file>', 'class ids of --test-data (or a labels array in it)')
    .option('--samples <n>', 'samples each stage is measured on (default: 256 of --data, all of --test-data)')
    .option('--threads <n>', "onnxruntime intra-op threads (default: onnxruntime's choice)")
    .option('--json', 'print the report as one JSON object')
    .action(async (input: string, flags: CompressFlags, command: Command) => {
      const { recipe, name } = compressRecipe(flags);
      const report = await executeRecipe(recipe, name, 'compress', input, flags, cliRecipeContext(command, context.io));
      if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
      if (report.verdict.status === 'damaged') context.io.stderr(`shrink: warning: ${report.verdict.message}\n`);
      context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatRun(report));
    });
}

function compressRecipe(flags: CompressFlags): { recipe: Recipe; name: string } {
  const overrides = (['sparsity', 'bits', 'epochs'] as const).filter((k) => flags[k] !== undefined);
  if (flags.recipe !== BUILT_IN) {
    if (overrides.length > 0) throw new UsageError(`--${overrides[0]} sets the ${BUILT_IN} recipe; a recipe file says it in its steps (${flags.recipe})`);
    const recipe = parseRecipe(readTextFile(flags.recipe), flags.recipe);
    if (recipe.steps.at(-1)?.kind !== 'pack') throw new UsageError(`${flags.recipe}: shrink compress writes a pack: end the recipe with {"pack": {}} (or use shrink run)`);
    return { recipe, name: flags.recipe };
  }
  const sparsity = flags.sparsity === undefined ? undefined : Number(flags.sparsity);
  if (sparsity !== undefined && (!/\S/.test(flags.sparsity as string) || !(sparsity >= 0 && sparsity < 1))) throw new UsageError(`--sparsity must be a number with 0 <= s < 1, got '${flags.sparsity}'`);
  const bits = flags.bits === undefined ? undefined : wholeNumber(flags.bits, '--bits', 1);
  const epochs = flags.epochs === undefined ? undefined : wholeNumber(flags.epochs, '--epochs', 1);
  try {
    return { recipe: deepCompressionRecipe({ sparsity, bits, epochs }), name: BUILT_IN };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
