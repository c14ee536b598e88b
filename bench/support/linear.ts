/** Small dense linear algebra for the benches' bare baselines (a handful of features). */

/** x with a x = b, by Gaussian elimination with partial pivoting (a and b are not changed). */
export function solve(a: readonly (readonly number[])[], b: readonly number[]): number[] {
  const d = b.length;
  const m = a.map((row) => [...row]);
  const v = [...b];
  for (let col = 0; col < d; col++) {
    let pivot = col;
    for (let r = col + 1; r < d; r++)
      if (Math.abs(m[r]?.[col] ?? 0) > Math.abs(m[pivot]?.[col] ?? 0)) pivot = r;
    [m[col], m[pivot]] = [m[pivot] as number[], m[col] as number[]];
    [v[col], v[pivot]] = [v[pivot] as number, v[col] as number];
    for (let r = 0; r < d; r++) {
      if (r === col) continue;
      const f = (m[r]?.[col] ?? 0) / (m[col]?.[col] ?? 1);
      for (let c = col; c < d; c++)
        (m[r] as number[])[c] = ((m[r] as number[])[c] as number) - f * ((m[col] as number[])[c] as number);
      v[r] = (v[r] as number) - f * (v[col] as number);
    }
  }
  return v.map((value, i) => value / (m[i]?.[i] ?? 1));
}

/** Per-column mean and standard deviation (1 for a constant column) of `x`'s rows. */
export function columnScale(x: readonly (readonly number[])[]): { mean: number[]; std: number[] } {
  const d = x[0]?.length ?? 0;
  const mean = Array.from({ length: d }, (_, j) => x.reduce((a, r) => a + (r[j] as number), 0) / x.length);
  const std = Array.from(
    { length: d },
    (_, j) =>
      Math.sqrt(x.reduce((a, r) => a + ((r[j] as number) - (mean[j] as number)) ** 2, 0) / x.length) || 1,
  );
  return { mean, std };
}
