/**
 * The tuner: a small search over MLP recipes (learning rate, width and depth, batch size, L2,
 * and a budget of optimizer steps rather than epochs), each fitted on the training split and
 * scored on the validation split; the test split is never seen here. The step budget comes
 * from the dataset's size (the more rows, the fewer passes each candidate gets) and a
 * wall-time cap from the config; a run is reproducible for a seed and backend (seeded
 * initializers, seeded per-epoch order, no dropout: a seeded tfjs dropout repeats its mask).
 *
 * Each candidate is trained by a plain loop over in-memory tensors: every step is one Adam
 * step on one batch, the validation loss is measured a few dozen times per candidate (not
 * every epoch: tiny datasets have 4 batches an epoch), the best weights by validation loss
 * are kept, and a candidate stops after `PATIENCE_CHECKS` checks without a better one. The
 * winner (best validation accuracy, then loss) is refitted on training + validation rows for
 * as many steps as its best checkpoint took (scaled to the larger set), so the shipped model
 * learns from 85% of the rows like a hand-written fit would.
 */
import type { LayersModel, Tensor2D } from '@tensorflow/tfjs';
import type { TuningReport } from '../schemas.ts';
import { tf } from '../tf.ts';
import { buildMlp, type MlpShape } from './model.ts';
import { seededRandom } from './random.ts';

export interface Recipe {
  hidden: number[];
  learningRate: number;
  batchSize: number;
  l2: number;
  /** Rare classes weigh more in the loss (tempered class weights), or every row the same. */
  classWeighted: boolean;
  /** Optimizer steps at most (early stopping may end sooner). */
  maxSteps: number;
}

export interface TuneData {
  /** Row-major training vectors (width `width`) and class indices, in a seeded order. */
  x: Float32Array;
  labels: Uint8Array;
  width: number;
  classes: number;
  /** Validation vectors and class indices. */
  validation: { x: Float32Array; labels: Uint8Array };
  /** Weight of each class in the loss. */
  classWeight: Record<number, number>;
}

export interface TuneOptions {
  seed: number;
  /** Candidates to try (1 = the default recipe only). */
  candidates: number;
  /** Epochs each candidate may run at most (the config's `epochs`). */
  maxEpochs: number;
  /** Wall-time cap for the whole search and refit, in ms. */
  maxMs: number;
  /** Refit the winner on training + validation rows (default true). */
  refit?: boolean;
  onCandidate?: (done: number, of: number) => void;
}

export interface TuneResult {
  model: LayersModel;
  shape: MlpShape;
  report: TuningReport;
}

/** Validation checks per candidate (spread over its step budget). */
const CHECKS = 40;
/** Checks without a better validation loss before a candidate stops. */
const PATIENCE_CHECKS = 10;
/**
 * Optimizer steps the whole search may take, in passes over the training rows at batch 32:
 * about 2.5 times the 100 epochs of a plain fit (the bench holds the wall time to 3 times).
 */
const BUDGET_PASSES = 200;
/** Steps every candidate gets at least, so tiny datasets are not under-trained. */
const MIN_STEPS = 200;
/** The search's steps at most, whatever the size: large datasets get fewer passes. */
const MAX_SEARCH_STEPS = 20_000;

/**
 * The candidates for a training set of `rows` rows and `width` inputs: the first is the
 * default recipe; the others vary width, depth, learning rate, batch size and L2.
 */
export function tuningRecipes(
  rows: number,
  width: number,
  options: Pick<TuneOptions, 'candidates' | 'maxEpochs'>,
): Recipe[] {
  const wide = 2 ** Math.ceil(Math.log2(Math.max(2, width * 2)));
  const big = Math.min(128, Math.max(32, wide));
  const all: Omit<Recipe, 'maxSteps'>[] = [
    { hidden: [32, 16], learningRate: 0.01, batchSize: 32, l2: 0, classWeighted: false },
    { hidden: [big, big / 2], learningRate: 0.003, batchSize: 32, l2: 1e-4, classWeighted: true },
    { hidden: [64, 32], learningRate: 0.01, batchSize: 64, l2: 1e-3, classWeighted: false },
    { hidden: [32], learningRate: 0.03, batchSize: 16, l2: 0, classWeighted: true },
    { hidden: [32, 16], learningRate: 0.003, batchSize: 16, l2: 1e-4, classWeighted: false },
  ];
  // The search's steps (from the training set's size, at most MAX_SEARCH_STEPS), shared out
  // equally; a small budget tries fewer candidates rather than under-training each.
  const passSteps = Math.ceil(rows / 32);
  const budget = Math.min(MAX_SEARCH_STEPS, BUDGET_PASSES * passSteps);
  const count = Math.max(1, Math.min(all.length, options.candidates, Math.floor(budget / MIN_STEPS)));
  const perCandidate = Math.max(MIN_STEPS, Math.floor(budget / count));
  return all.slice(0, count).map((recipe) => {
    const epochSteps = Math.ceil(rows / recipe.batchSize);
    return { ...recipe, maxSteps: Math.max(1, Math.min(perCandidate, options.maxEpochs * epochSteps)) };
  });
}

/** Runs the search and returns the winner, refitted, with every candidate's scores. */
export async function tuneMlp(data: TuneData, options: TuneOptions): Promise<TuneResult> {
  const started = performance.now();
  const rows = data.labels.length;
  const recipes = tuningRecipes(rows, data.width, options);
  const train = tensorsOf(data.x, data.labels, data.width, data.classes, data.classWeight);
  const validation = tensorsOf(
    data.validation.x,
    data.validation.labels,
    data.width,
    data.classes,
    data.classWeight,
  );
  const deadline = started + options.maxMs;
  const results: TuningReport['candidates'] = [];
  options.onCandidate?.(0, recipes.length);
  let best: { index: number; model: LayersModel; bestStep: number } | undefined;
  try {
    for (const [index, recipe] of recipes.entries()) {
      const candidateStarted = performance.now();
      if (index > 0 && !enoughTime(results, recipe, deadline)) {
        results.push({ ...describe(recipe), skipped: 'wall-time cap (config tuning.maxSeconds)' });
        continue;
      }
      const shape = { inputWidth: data.width, hidden: recipe.hidden, classes: data.classes };
      const model = buildMlp(shape, options.seed, recipe.learningRate);
      const fit = await fitRecipe(model, recipe, train, validation, options.seed, deadline);
      results.push({
        ...describe(recipe),
        validationAccuracy: round(fit.accuracy),
        validationLoss: round(fit.loss),
        steps: fit.steps,
        bestStep: fit.bestStep,
        ms: Math.round(performance.now() - candidateStarted),
      });
      options.onCandidate?.(index + 1, recipes.length);
      const current = best ? results[best.index] : undefined;
      if (!best || better(results[index], current)) {
        best?.model.dispose();
        best = { index, model, bestStep: fit.bestStep };
      } else {
        model.dispose();
      }
    }
    if (!best) throw new Error('the tuner trained no candidate');
    const recipe = recipes[best.index] as Recipe;
    const shape = { inputWidth: data.width, hidden: recipe.hidden, classes: data.classes };
    let model = best.model;
    let refit: TuningReport['refit'];
    if (options.refit !== false && performance.now() < deadline) {
      // As many passes over the larger set as the winner's best checkpoint took.
      const all = concatTensors(train, validation);
      try {
        const steps = Math.max(
          1,
          Math.round((best.bestStep * (rows + data.validation.labels.length)) / rows),
        );
        const refitStarted = performance.now();
        const refitted = buildMlp(shape, options.seed, recipe.learningRate);
        await fitSteps(refitted, recipe, all, options.seed, steps, deadline);
        model.dispose();
        model = refitted;
        refit = { steps, ms: Math.round(performance.now() - refitStarted) };
      } finally {
        tf.dispose([all.x, all.y, all.w]);
      }
    }
    best.model = model;
    return {
      model,
      shape,
      report: {
        chosen: best.index,
        candidates: results,
        ...(refit ? { refit } : {}),
        ms: Math.round(performance.now() - started),
      },
    };
  } catch (error) {
    best?.model.dispose();
    throw error;
  } finally {
    tf.dispose([train.x, train.y, train.w, validation.x, validation.y, validation.w]);
  }
}

type Scored = TuningReport['candidates'][number];

/** Higher validation accuracy wins; a tie goes to the lower validation loss. */
function better(a: Scored | undefined, b: Scored | undefined): boolean {
  if (a?.validationAccuracy === undefined) return false;
  if (b?.validationAccuracy === undefined) return true;
  if (a.validationAccuracy !== b.validationAccuracy) return a.validationAccuracy > b.validationAccuracy;
  return (a.validationLoss ?? Number.POSITIVE_INFINITY) < (b.validationLoss ?? Number.POSITIVE_INFINITY);
}

/** Whether the time left fits this recipe, at the step rate the candidates so far ran. */
function enoughTime(results: readonly Scored[], recipe: Recipe, deadline: number): boolean {
  let steps = 0;
  let ms = 0;
  for (const r of results) {
    steps += r.steps ?? 0;
    ms += r.ms ?? 0;
  }
  const perStep = steps ? ms / steps : 0;
  return performance.now() + perStep * recipe.maxSteps <= deadline;
}

function describe(recipe: Recipe) {
  return {
    hidden: recipe.hidden,
    learningRate: recipe.learningRate,
    batchSize: recipe.batchSize,
    l2: recipe.l2,
    classWeighted: recipe.classWeighted,
    maxSteps: recipe.maxSteps,
  };
}

interface Tensors {
  x: Tensor2D;
  y: Tensor2D;
  /** Per-row loss weight (the class weight), shape [n]. */
  w: tf.Tensor1D;
}

function tensorsOf(
  x: Float32Array,
  labels: Uint8Array,
  width: number,
  classes: number,
  classWeight: Record<number, number>,
): Tensors {
  const n = labels.length;
  const y = new Float32Array(n * classes);
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const c = labels[i] as number;
    y[i * classes + c] = 1;
    w[i] = classWeight[c] ?? 1;
  }
  return { x: tf.tensor2d(x, [n, width]), y: tf.tensor2d(y, [n, classes]), w: tf.tensor1d(w) };
}

function concatTensors(a: Tensors, b: Tensors): Tensors {
  return { x: tf.concat([a.x, b.x]), y: tf.concat([a.y, b.y]), w: tf.concat([a.w, b.w]) };
}

/** Weighted mean cross-entropy (+ L2 on the kernels) of the model on a batch. */
function lossOf(model: LayersModel, recipe: Recipe, x: Tensor2D, y: Tensor2D, w: tf.Tensor1D): tf.Scalar {
  const { l2 } = recipe;
  const p = (model.apply(x, { training: true }) as Tensor2D).clipByValue(1e-7, 1 - 1e-7);
  const ce = tf.neg(tf.sum(tf.mul(y, tf.log(p)), 1));
  let loss = (recipe.classWeighted ? tf.mean(tf.mul(ce, w)) : tf.mean(ce)) as tf.Scalar;
  if (l2 > 0) {
    for (const weight of model.trainableWeights) {
      if (weight.name.includes('kernel'))
        loss = tf.add(loss, tf.mul(l2, tf.sum(tf.square(weight.read())))) as tf.Scalar;
    }
  }
  return loss;
}

/** Validation loss (unweighted cross-entropy) and accuracy. */
function evaluate(model: LayersModel, validation: Tensors): { loss: number; accuracy: number } {
  return tf.tidy(() => {
    const p = (model.predict(validation.x) as Tensor2D).clipByValue(1e-7, 1 - 1e-7);
    const loss = tf.mean(tf.neg(tf.sum(tf.mul(validation.y, tf.log(p)), 1)));
    const hits = tf.mean(tf.cast(tf.equal(tf.argMax(p, 1), tf.argMax(validation.y, 1)), 'float32'));
    return { loss: loss.dataSync()[0] ?? Number.NaN, accuracy: hits.dataSync()[0] ?? 0 };
  });
}

/**
 * Batches of one epoch in a seeded order (a new order each epoch, the same for a seed),
 * made lazily as index gathers.
 */
function* epochBatches(
  data: Tensors,
  batchSize: number,
  random: () => number,
  maxBatches: number,
): Generator<[Tensor2D, Tensor2D, tf.Tensor1D]> {
  const n = data.x.shape[0];
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i] as number;
    order[i] = order[j] as number;
    order[j] = t;
  }
  for (let start = 0, made = 0; start < n && made < maxBatches; start += batchSize, made++) {
    const indices = tf.tensor1d(order.subarray(start, Math.min(n, start + batchSize)), 'int32');
    const batch: [Tensor2D, Tensor2D, tf.Tensor1D] = [
      tf.gather(data.x, indices),
      tf.gather(data.y, indices),
      tf.gather(data.w, indices),
    ];
    indices.dispose();
    yield batch;
  }
}

/** One recipe on the training rows, scored on validation; best weights (by loss) kept. */
async function fitRecipe(
  model: LayersModel,
  recipe: Recipe,
  train: Tensors,
  validation: Tensors,
  seed: number,
  deadline: number,
): Promise<{ loss: number; accuracy: number; steps: number; bestStep: number }> {
  const every = Math.max(1, Math.ceil(recipe.maxSteps / CHECKS));
  let best = { loss: Number.POSITIVE_INFINITY, accuracy: 0, step: 0, weights: [] as tf.Tensor[] };
  let checksSince = 0;
  const steps = await trainLoop(model, recipe, train, seed, recipe.maxSteps, deadline, (step) => {
    if (step % every !== 0 && step !== recipe.maxSteps) return false;
    const score = evaluate(model, validation);
    if (score.loss < best.loss - 1e-4) {
      for (const t of best.weights) t.dispose();
      best = { ...score, step, weights: model.getWeights().map((w) => w.clone()) };
      checksSince = 0;
    } else if (++checksSince >= PATIENCE_CHECKS) {
      return true;
    }
    return false;
  });
  if (best.weights.length > 0) {
    model.setWeights(best.weights);
    for (const t of best.weights) t.dispose();
  }
  return { loss: best.loss, accuracy: best.accuracy, steps, bestStep: best.step || steps };
}

/** A fixed number of steps (the refit). */
async function fitSteps(
  model: LayersModel,
  recipe: Recipe,
  data: Tensors,
  seed: number,
  steps: number,
  deadline: number,
) {
  await trainLoop(model, recipe, data, seed, steps, deadline, () => false);
}

/** Adam steps over seeded epochs until `maxSteps`, the deadline, or `check` says stop. */
async function trainLoop(
  model: LayersModel,
  recipe: Recipe,
  data: Tensors,
  seed: number,
  maxSteps: number,
  deadline: number,
  check: (step: number) => boolean,
): Promise<number> {
  const optimizer = tf.train.adam(recipe.learningRate);
  const random = seededRandom(seed ^ 0x7a11);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  let step = 0;
  try {
    while (step < maxSteps) {
      for (const [x, y, w] of epochBatches(data, recipe.batchSize, random, maxSteps - step)) {
        optimizer.minimize(() => lossOf(model, recipe, x, y, w), false, variables);
        tf.dispose([x, y, w]);
        step++;
        if (step < maxSteps && check(step)) return step;
      }
      if (performance.now() > deadline) break;
      // Let timers and I/O run between epochs (progress updates, the registry heartbeat).
      await new Promise((resolve) => setImmediate(resolve));
    }
    check(maxSteps);
    return step;
  } finally {
    optimizer.dispose();
  }
}

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}
