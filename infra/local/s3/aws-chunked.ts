/**
 * `Content-Encoding: aws-chunked` bodies as the AWS SDKs send a streamed upload with a
 * checksum trailer (`x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`, the SDK v3
 * default for a stream body): `<hex size>\r\n<data>\r\n` chunks, a `0\r\n` chunk, then
 * trailer lines (`x-amz-checksum-crc32:<base64>`) and an empty line. The decoder passes the
 * data on and keeps the trailers for the checksum check; anything else in the framing is an
 * error (the upload is refused, nothing is stored).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from './errors.ts';

/** A chunk header line or a trailer line is short; a longer one is not aws-chunked framing. */
const MAX_LINE = 4096;

const malformed = (why: string) =>
  new S3Error('IncompleteBody', 400, `The aws-chunked body is malformed: ${why}.`);

export class AwsChunkedDecoder extends Transform {
  /** Trailer headers, names in lower case, once the body ended. */
  readonly trailers = new Map<string, string>();
  private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  private line = '';
  private remaining = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      let at = 0;
      while (at < chunk.length) {
        if (this.state === 'data') {
          const take = Math.min(this.remaining, chunk.length - at);
          this.push(chunk.subarray(at, at + take));
          at += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = 'data-end';
          continue;
        }
        if (this.state === 'done') throw malformed('bytes after the final empty line');
        const newline = chunk.indexOf(0x0a, at);
        const end = newline < 0 ? chunk.length : newline + 1;
        this.line += chunk.toString('latin1', at, end);
        at = end;
        if (this.line.length > MAX_LINE) throw malformed('a line is too long');
        if (newline >= 0) this.takeLine(this.line.replace(/\r?\n$/, ''));
      }
      done();
    } catch (error) {
      done(error as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    done(this.state === 'done' ? null : malformed('it ends before its final chunk and trailers'));
  }

  private takeLine(line: string): void {
    this.line = '';
    switch (this.state) {
      case 'size': {
        // `<hex>` or `<hex>;chunk-signature=...` (signed chunks are refused before this).
        const match = /^([0-9a-fA-F]{1,16})(;.*)?$/.exec(line);
        if (!match) throw malformed(`'${line.slice(0, 40)}' is not a chunk size`);
        this.remaining = Number.parseInt(match[1] ?? '', 16);
        this.state = this.remaining === 0 ? 'trailer' : 'data';
        return;
      }
      case 'data-end':
        if (line !== '') throw malformed('a chunk is longer than its size');
        this.state = 'size';
        return;
      case 'trailer': {
        if (line === '') {
          this.state = 'done';
          return;
        }
        const colon = line.indexOf(':');
        if (colon <= 0) throw malformed(`'${line.slice(0, 40)}' is not a trailer`);
        this.trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        return;
      }
      default:
        throw malformed('unexpected framing');
    }
  }
}
