/**
 * The tuner: a small search over MLP recipes (learning rate, width and depth, batch size, L2,
 * class weights, and a budget of optimizer steps rather than epochs), each fitted on the
 * training split and scored on the validation split; the test split is never seen here. The
 * step budget comes from the dataset's size (the more rows, the fewer passes) and a
 * wall-time cap from the config; a run is reproducible for a seed and backend (seeded
 * initializers, seeded per-epoch order, no dropout: a seeded tfjs dropout repeats its mask).
 *
 * The search is successive halving with one survivor: every candidate races a first round
 * of `firstSteps`, and only the best of those still learning (not early-stopped) trains on,
 * from where it was, to its cap (the steps of a plain 100-epoch fit); the choice is then
 * made over every candidate's final scores. Splitting the budget equally starved the recipe
 * that was going to win: slow-converging data (many classes, few features) was still
 * improving when its share ran out.
 *
 * Each candidate is trained by a plain loop over in-memory tensors: every step is one Adam
 * step on one batch, the validation loss is measured a few dozen times per candidate (not
 * every epoch: tiny datasets have 4 batches an epoch), the best weights by validation loss
 * are kept, and a candidate stops after `PATIENCE_CHECKS` checks without a better one.
 *
 * What ships is the mean of the class probabilities of the winner (best validation
 * accuracy, then loss) and every candidate close to it on validation: on 100-1,700-row
 * datasets the single best-on-validation model is a noisy pick (one validation row is 1-5
 * points), and averaging the recipes cut the worst dataset's shortfall against a plain fit
 * from -0.022 to +0.003 over 6 seeds (bench/train.ts, README). Each member trains on from its best
 * checkpoint over training + validation rows, warm, for half the steps that checkpoint took
 * (scaled to the larger set) at half its learning rate, so the shipped model learns from 85%
 * of the rows like a hand-written fit would without becoming a fresh, unvalidated draw.
 */
import type { LayersModel, Tensor2D } from '@tensorflow/tfjs';
import type { TuningReport } from '../schemas.ts';
import { tf } from '../tf.ts';
import { buildMlp, type MlpShape } from './model.ts';
import type { Objective } from './objective.ts';
import { seededRandom } from './random.ts';

/** The warm refit's length, as a share of the winner's steps to its checkpoint, and its rate. */
const WARM_REFIT_SHARE = 0.5;
const WARM_REFIT_RATE = 0.5;
/**
 * A candidate joins the ensemble unless its validation accuracy trails the winner's by more
 * than this, or by more than two validation rows on a small split (one row is noise there):
 * a recipe that diverged or under-fitted would only drag the mean down.
 */
const ENSEMBLE_MARGIN = 0.05;

export interface Recipe {
  hidden: number[];
  learningRate: number;
  batchSize: number;
  l2: number;
  /** Rare classes weigh more in the loss (tempered class weights), or every row the same. */
  classWeighted: boolean;
  /** Optimizer steps at most, if it wins the first round (early stopping may end sooner). */
  maxSteps: number;
  /** Optimizer steps of the first round, which every candidate runs. */
  firstSteps: number;
}

export interface TuneData {
  /** Row-major training vectors (width `width`) and targets, in a seeded order. */
  x: Float32Array;
  /** Class indices, or standardized values for regression. */
  labels: Uint8Array | Float32Array;
  width: number;
  classes: number;
  /** Validation vectors and targets. */
  validation: { x: Float32Array; labels: Uint8Array | Float32Array };
  /** Weight of each class in the loss (empty for regression: every row weighs 1). */
  classWeight: Record<number, number>;
  /** The output layer, loss and ranking of the model's task. */
  objective: Objective;
  /** Regression: the target's std, so validation RMSE is reported in target units. */
  targetStd?: number;
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
  /** Ship the mean of the close candidates (default true), or the winner alone. */
  ensemble?: boolean;
  onCandidate?: (done: number, of: number) => void;
}

export interface TuneResult {
  model: LayersModel;
  shape: MlpShape;
  report: TuningReport;
}

/** Validation checks per candidate (spread over its step cap). */
const CHECKS = 40;
/** Checks without a better validation loss before a candidate stops. */
const PATIENCE_CHECKS = 10;
/**
 * Optimizer steps the whole search may take, in passes over the training rows at batch 32.
 * With the refit (at most 1.2 times the winner's cap) this is about 2.4 times the 100 epochs
 * of a plain fit (the bench holds the wall time to 3 times).
 */
const SEARCH_PASSES = 170;
/** Passes the winner may take at most: as many as a plain fit's 100 epochs. */
const WINNER_PASSES = 100;
/** Steps the winner may take at least, so tiny datasets are not under-trained. */
const MIN_STEPS = 200;
/** Steps of the first round at least: a shorter race would rank nothing. */
const MIN_FIRST_STEPS = 100;
/** The search's steps at most, whatever the size: large datasets get fewer passes. */
const MAX_SEARCH_STEPS = 20_000;

/**
 * The candidates for a training set of `rows` rows and `width` inputs, with their step
 * budgets: every candidate races `firstSteps` steps, then the best still learning continues
 * to `maxSteps` (successive halving with one survivor). The first recipe is the plain one (32-16, Adam
 * 0.01, batch 32); the others vary width, learning rate, batch size, L2 and class weights.
 */
export function tuningRecipes(
  rows: number,
  width: number,
  options: Pick<TuneOptions, 'candidates' | 'maxEpochs'>,
): Recipe[] {
  const wide = 2 ** Math.ceil(Math.log2(Math.max(2, width * 2)));
  const big = Math.min(128, Math.max(64, wide));
  const all: Omit<Recipe, 'maxSteps' | 'firstSteps'>[] = [
    { hidden: [32, 16], learningRate: 0.01, batchSize: 32, l2: 0, classWeighted: false },
    { hidden: [big, big / 2], learningRate: 0.005, batchSize: 32, l2: 1e-4, classWeighted: false },
    { hidden: [32, 16], learningRate: 0.02, batchSize: 64, l2: 0, classWeighted: true },
    { hidden: [64, 32], learningRate: 0.01, batchSize: 64, l2: 1e-3, classWeighted: false },
    { hidden: [32], learningRate: 0.03, batchSize: 16, l2: 0, classWeighted: true },
  ];
  // The search's steps (from the training set's size, at most MAX_SEARCH_STEPS): the winner's
  // cap first, the rest shared out as the first round; a small budget races fewer candidates.
  const passSteps = Math.ceil(rows / 32);
  const search = Math.max(MIN_STEPS, Math.min(MAX_SEARCH_STEPS, SEARCH_PASSES * passSteps));
  const winnerPasses = Math.min(WINNER_PASSES * passSteps, (search * WINNER_PASSES) / SEARCH_PASSES);
  const winner = Math.max(MIN_STEPS, Math.floor(winnerPasses));
  const left = Math.max(0, search - winner);
  const count = Math.max(1, Math.min(all.length, options.candidates, 1 + Math.floor(left / MIN_FIRST_STEPS)));
  const first = count > 1 ? Math.min(winner, Math.floor(left / (count - 1))) : winner;
  return all.slice(0, count).map((recipe) => {
    const epochSteps = Math.ceil(rows / recipe.batchSize);
    const maxSteps = Math.max(1, Math.min(winner, options.maxEpochs * epochSteps));
    return { ...recipe, maxSteps, firstSteps: Math.min(first, maxSteps) };
  });
}

/** Runs the search and returns what ships (the ensemble or the winner, refitted), with every candidate's scores. */
export async function tuneMlp(data: TuneData, options: TuneOptions): Promise<TuneResult> {
  const started = performance.now();
  const rows = data.labels.length;
  const { objective } = data;
  // Class weights mean nothing to a regression model: its recipes are all unweighted.
  const recipes = tuningRecipes(rows, data.width, options).map((recipe) =>
    objective.task === 'regression' ? { ...recipe, classWeighted: false } : recipe,
  );
  const train = tensorsOf(data.x, data.labels, data.width, objective, data.classWeight);
  const validation = tensorsOf(
    data.validation.x,
    data.validation.labels,
    data.width,
    objective,
    data.classWeight,
  );
  const score = (recipe: Recipe, run: CandidateRun, ms: number) => scored(recipe, run, ms, data.targetStd);
  const deadline = started + options.maxMs;
  const results: TuningReport['candidates'] = [];
  const runs: (CandidateRun | undefined)[] = [];
  options.onCandidate?.(0, recipes.length);
  try {
    // Round 1: every candidate races its first steps (those the time cap leaves room for).
    for (const [index, recipe] of recipes.entries()) {
      if (index > 0 && !enoughTime(results, recipe.firstSteps, deadline)) {
        results.push({ ...describe(recipe), skipped: 'wall-time cap (config tuning.maxSeconds)' });
        runs.push(undefined);
        continue;
      }
      const shape = { inputWidth: data.width, hidden: recipe.hidden, classes: data.classes };
      const run = new CandidateRun(
        buildMlp(shape, options.seed, recipe.learningRate, objective),
        recipe,
        objective,
        train,
        options.seed,
        validation,
      );
      runs.push(run);
      const candidateStarted = performance.now();
      await run.advance(recipe.firstSteps, deadline);
      results.push(score(recipe, run, performance.now() - candidateStarted));
      options.onCandidate?.(index + 1, recipes.length);
    }
    // Round 2: the best of those still learning continues to its cap (early stopping may end
    // it sooner). One that already stopped has its best weights; more steps would not help it.
    let continued: number | undefined;
    const learning = results.map((result, i) => {
      const run = runs[i];
      const { validationAccuracy: _, validationLoss: __, ...unscored } = result;
      return run && !run.stopped && run.step < run.recipe.maxSteps ? result : unscored;
    });
    const leader = bestIndex(learning);
    const run = leader === undefined ? undefined : runs[leader];
    if (leader !== undefined && run) {
      const before = results[leader]?.ms ?? 0;
      const again = performance.now();
      if (enoughTime(results, run.recipe.maxSteps - run.step, deadline)) {
        await run.advance(run.recipe.maxSteps, deadline);
        results[leader] = score(run.recipe, run, before + performance.now() - again);
        continued = leader;
      }
    }
    const chosen = bestIndex(results);
    const best = chosen === undefined ? undefined : runs[chosen];
    if (chosen === undefined || !best) throw new Error('the tuner trained no candidate');
    const recipe = best.recipe;
    const shape = { inputWidth: data.width, hidden: recipe.hidden, classes: data.classes };
    const members =
      options.ensemble === false ? [chosen] : ensembleMembers(results, chosen, data.validation.labels.length);
    // The members' validation outputs summed (their mean, over members.length), before any refit sees those rows.
    const models: LayersModel[] = [];
    let refit: TuningReport['refit'];
    let validationSum: Tensor2D | undefined;
    const all = options.refit !== false ? concatTensors(train, validation) : undefined;
    try {
      for (const i of members) {
        const member = runs[i] as CandidateRun;
        runs[i] = undefined;
        let model = member.finish();
        if (members.length > 1) {
          const p = model.predict(validation.x) as Tensor2D;
          const sum = validationSum ? tf.add(validationSum, p) : p.clone();
          tf.dispose([p, validationSum]);
          validationSum = sum as Tensor2D;
        }
        if (all && performance.now() < deadline) {
          // The member's checkpoint trains on over training + validation rows, briefly and at
          // a lower rate: it learns from the held-out rows but cannot drift far from the
          // weights validation chose (a refit from scratch is a fresh draw, and lost up to 5 points).
          const steps = Math.max(
            1,
            Math.round((member.bestStep * WARM_REFIT_SHARE * (rows + data.validation.labels.length)) / rows),
          );
          const refitStarted = performance.now();
          const refitted = new CandidateRun(
            model,
            { ...member.recipe, learningRate: member.recipe.learningRate * WARM_REFIT_RATE },
            objective,
            all,
            options.seed,
          );
          await refitted.advance(steps, deadline);
          model = refitted.finish();
          if (i === chosen) refit = { steps, ms: Math.round(performance.now() - refitStarted) };
        }
        models.push(model);
      }
    } catch (error) {
      for (const m of models) m.dispose();
      throw error;
    } finally {
      if (all) tf.dispose([all.x, all.y, all.w]);
    }
    const ensemble = validationSum
      ? { members, ...ensembleScore(validationSum, members.length, validation.y, objective, data.targetStd) }
      : undefined;
    tf.dispose(validationSum);
    const model = averageModels(models, data.width);
    return {
      model,
      shape,
      report: {
        chosen,
        candidates: results,
        ...(continued !== undefined ? { continued } : {}),
        ...(refit ? { refit } : {}),
        ...(ensemble ? { ensemble } : {}),
        ms: Math.round(performance.now() - started),
      },
    };
  } finally {
    for (const run of runs) run?.dispose();
    tf.dispose([train.x, train.y, train.w, validation.x, validation.y, validation.w]);
  }
}

function scored(
  recipe: Recipe,
  run: CandidateRun,
  ms: number,
  targetStd: number | undefined,
): TuningReport['candidates'][number] {
  const { accuracy, loss } = run.best;
  return {
    ...describe(recipe),
    ...(accuracy !== undefined ? { validationAccuracy: round(accuracy) } : {}),
    // The loss of a regression candidate is the mean squared error of standardized targets.
    ...(targetStd !== undefined && Number.isFinite(loss)
      ? { validationRmse: round(Math.sqrt(loss) * targetStd) }
      : {}),
    validationLoss: round(loss),
    steps: run.step,
    bestStep: run.bestStep,
    ms: Math.round(ms),
  };
}

type Scored = TuningReport['candidates'][number];

/**
 * Higher validation accuracy wins and a tie goes to the lower validation loss; regression
 * candidates have no accuracy and are ranked by loss alone.
 */
function better(a: Scored | undefined, b: Scored | undefined): boolean {
  if (a?.validationLoss === undefined) return false;
  if (b?.validationLoss === undefined) return true;
  const [x, y] = [a.validationAccuracy, b.validationAccuracy];
  if (x !== undefined && y !== undefined && x !== y) return x > y;
  return a.validationLoss < b.validationLoss;
}

/** The best scored candidate (the first of equals), or undefined when none was trained. */
function bestIndex(results: readonly Scored[]): number | undefined {
  let best: number | undefined;
  results.forEach((result, i) => {
    if (better(result, best === undefined ? undefined : results[best])) best = i;
  });
  return best;
}

/** Whether the time left fits `steps` more steps, at the step rate the candidates so far ran. */
function enoughTime(results: readonly Scored[], steps: number, deadline: number): boolean {
  let done = 0;
  let ms = 0;
  for (const r of results) {
    done += r.steps ?? 0;
    ms += r.ms ?? 0;
  }
  const perStep = done ? ms / done : 0;
  return performance.now() + perStep * steps <= deadline;
}

function describe(recipe: Recipe) {
  return {
    hidden: recipe.hidden,
    learningRate: recipe.learningRate,
    batchSize: recipe.batchSize,
    l2: recipe.l2,
    classWeighted: recipe.classWeighted,
    maxSteps: recipe.maxSteps,
    firstSteps: recipe.firstSteps,
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
  labels: Uint8Array | Float32Array,
  width: number,
  objective: Objective,
  classWeight: Record<number, number>,
): Tensors {
  const n = labels.length;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = classWeight[labels[i] as number] ?? 1;
  return {
    x: tf.tensor2d(x, [n, width]),
    y: tf.tensor2d(objective.targets(labels), [n, objective.units]),
    w: tf.tensor1d(w),
  };
}

function concatTensors(a: Tensors, b: Tensors): Tensors {
  return { x: tf.concat([a.x, b.x]), y: tf.concat([a.y, b.y]), w: tf.concat([a.w, b.w]) };
}

/** The weighted mean of the task's loss (+ L2 on the kernels) of the model on a batch. */
function lossOf(
  model: LayersModel,
  recipe: Recipe,
  objective: Objective,
  x: Tensor2D,
  y: Tensor2D,
  w: tf.Tensor1D,
): tf.Scalar {
  const { l2 } = recipe;
  const rowLoss = objective.rowLoss(model.apply(x, { training: true }) as Tensor2D, y);
  let loss = (recipe.classWeighted ? tf.mean(tf.mul(rowLoss, w)) : tf.mean(rowLoss)) as tf.Scalar;
  if (l2 > 0) {
    for (const weight of model.trainableWeights) {
      if (weight.name.includes('kernel'))
        loss = tf.add(loss, tf.mul(l2, tf.sum(tf.square(weight.read())))) as tf.Scalar;
    }
  }
  return loss;
}

/** Validation loss (the task's, unweighted) and accuracy (classifiers). */
function evaluate(
  model: LayersModel,
  objective: Objective,
  validation: Tensors,
): { loss: number; accuracy: number | undefined } {
  return tf.tidy(() => {
    const output = model.predict(validation.x) as Tensor2D;
    const loss = tf.mean(objective.rowLoss(output, validation.y));
    return { loss: loss.dataSync()[0] ?? Number.NaN, accuracy: objective.accuracy(output, validation.y) };
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
  for (let start = 0; start < n; start += batchSize) {
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

/**
 * One candidate's training, which can be paused and resumed (the second round continues the
 * first's model, optimizer state and epoch order): Adam steps over seeded epochs; with
 * validation rows, the loss is checked every `maxSteps / CHECKS` steps, the best weights by
 * validation loss are kept, and it stops after PATIENCE_CHECKS checks without a better one.
 */
class CandidateRun {
  step = 0;
  stopped = false;
  best = {
    loss: Number.POSITIVE_INFINITY,
    accuracy: undefined as number | undefined,
    step: 0,
    weights: [] as tf.Tensor[],
  };
  private readonly optimizer: tf.AdamOptimizer;
  private readonly random: () => number;
  private readonly variables: tf.Variable[];
  private readonly every: number;
  private checksSince = 0;
  private epoch: Generator<[Tensor2D, Tensor2D, tf.Tensor1D]> | undefined;

  constructor(
    readonly model: LayersModel,
    readonly recipe: Recipe,
    private readonly objective: Objective,
    private readonly data: Tensors,
    seed: number,
    private readonly validation?: Tensors,
  ) {
    this.optimizer = tf.train.adam(recipe.learningRate);
    this.random = seededRandom(seed ^ 0x7a11);
    this.variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    this.every = Math.max(1, Math.ceil(recipe.maxSteps / CHECKS));
  }

  /** The step of the weights kept (the last step without validation rows). */
  get bestStep(): number {
    return this.best.step || this.step;
  }

  /** Trains until step `to`, the deadline (checked between epochs), or early stopping. */
  async advance(to: number, deadline: number): Promise<void> {
    while (this.step < to && !this.stopped) {
      this.epoch ??= epochBatches(this.data, this.recipe.batchSize, this.random);
      const next = this.epoch.next();
      if (next.done) {
        this.epoch = undefined;
        if (performance.now() > deadline) break;
        // Let timers and I/O run between epochs (progress updates, the registry heartbeat).
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      const [x, y, w] = next.value;
      this.optimizer.minimize(
        () => lossOf(this.model, this.recipe, this.objective, x, y, w),
        false,
        this.variables,
      );
      tf.dispose([x, y, w]);
      this.step++;
      if (this.step % this.every === 0 || this.step === to) this.check();
    }
  }

  private check(): void {
    if (!this.validation || this.best.step === this.step) return;
    const score = evaluate(this.model, this.objective, this.validation);
    if (score.loss < this.best.loss - 1e-4) {
      for (const t of this.best.weights) t.dispose();
      this.best = { ...score, step: this.step, weights: this.model.getWeights().map((w) => w.clone()) };
      this.checksSince = 0;
    } else if (++this.checksSince >= PATIENCE_CHECKS) {
      this.stopped = true;
    }
  }

  /** The model with the kept weights; the run's other tensors are released. */
  finish(): LayersModel {
    if (this.best.weights.length > 0) this.model.setWeights(this.best.weights);
    this.release();
    return this.model;
  }

  /** Releases the run and its model. */
  dispose(): void {
    this.release();
    this.model.dispose();
  }

  private released = false;

  private release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of this.best.weights) t.dispose();
    this.best.weights = [];
    this.optimizer.dispose();
  }
}

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

/**
 * The candidates the ensemble averages: the winner and every scored one close to it (by
 * accuracy for classifiers; for regression, a validation RMSE within ENSEMBLE_MARGIN of the
 * winner's, relative).
 */
export function ensembleMembers(
  results: readonly Scored[],
  chosen: number,
  validationRows: number,
): number[] {
  const winner = results[chosen];
  if (winner?.validationAccuracy === undefined) {
    const bestRmse = Math.sqrt(winner?.validationLoss ?? Number.POSITIVE_INFINITY);
    return results.flatMap((r, i) =>
      i === chosen ||
      (r.validationLoss !== undefined &&
        Math.sqrt(r.validationLoss) <= bestRmse * (1 + ENSEMBLE_MARGIN) + 1e-9)
        ? [i]
        : [],
    );
  }
  const best = winner.validationAccuracy;
  const margin = Math.max(ENSEMBLE_MARGIN, 2 / Math.max(1, validationRows));
  return results.flatMap((r, i) =>
    i === chosen || (r.validationAccuracy !== undefined && r.validationAccuracy >= best - margin - 1e-9)
      ? [i]
      : [],
  );
}

/** The ensemble's validation score from its members' summed outputs: accuracy, or RMSE in target units. */
function ensembleScore(
  sum: Tensor2D,
  members: number,
  truth: Tensor2D,
  objective: Objective,
  targetStd: number | undefined,
): { validationAccuracy?: number; validationRmse?: number } {
  return tf.tidy(() => {
    const mean = tf.div(sum, members) as Tensor2D;
    const accuracy = objective.accuracy(mean, truth);
    if (accuracy !== undefined) return { validationAccuracy: round(accuracy) };
    const mse = tf.mean(objective.rowLoss(mean, truth)).dataSync()[0] ?? Number.NaN;
    return { validationRmse: round(Math.sqrt(mse) * (targetStd ?? 1)) };
  });
}

/**
 * One model whose output is the mean of the members' class probabilities: each member's
 * layers applied to one shared input, joined by an average layer. It saves, loads and
 * quantizes as any tfjs layers model, so the device needs nothing new.
 */
function averageModels(models: LayersModel[], width: number): LayersModel {
  if (models.length === 1) return models[0] as LayersModel;
  const input = tf.input({ shape: [width] });
  const outputs = models.map((m) => {
    let h: tf.SymbolicTensor = input;
    for (const layer of m.layers) h = layer.apply(h) as tf.SymbolicTensor;
    return h;
  });
  const output = tf.layers.average().apply(outputs) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output });
}
