/** Where a local stack keeps its state unless told otherwise (no imports: the device package reads it). */
export const DEFAULT_DATA_DIR = '.edgeloop';
