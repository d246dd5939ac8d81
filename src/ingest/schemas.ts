/**
 * Validation of an ingest request. Pure: takes the parsed body and the limits, returns the endpoint and
 * the data objects, or throws a ValidationError whose details name each bad field (`data[3].key`).
 */
import Joi from 'joi';
import { ValidationError, type ErrorDetail } from '../shared/errors.js';
import type { HttpMethod, Template } from '../shared/queue.js';
import { isHttpUrlTemplate, type DataObject } from '../shared/template.js';

export interface IngestLimits {
  readonly maxDataItems: number;
  readonly maxUrlLength: number;
}

export interface IngestRequest {
  readonly template: Template;
  readonly data: readonly DataObject[];
}

/** The schema's method rule (a regex, as there: 'poſt'.toUpperCase() is 'POST', but /i does not match it). */
const METHOD = /^(get|post)$/i;

const dataValue = Joi.alternatives()
  .try(Joi.string().allow(''), Joi.number(), Joi.boolean(), Joi.valid(null))
  .messages({
    'alternatives.match': '{{#label}} must be a string, number, boolean or null',
    'alternatives.types': '{{#label}} must be a string, number, boolean or null',
  });

function buildSchema(limits: IngestLimits): Joi.ObjectSchema {
  return Joi.object({
    endpoint: Joi.object({
      method: Joi.string()
        .required()
        .pattern(METHOD)
        .messages({ 'string.pattern.base': '{{#label}} must be GET or POST' }),
      url: Joi.string()
        .required()
        .max(limits.maxUrlLength)
        .custom((value: string, helpers) => (isHttpUrlTemplate(value) ? value : helpers.error('string.httpUrl')))
        .messages({ 'string.httpUrl': '{{#label}} must be an absolute http:// or https:// URL' }),
    }).required(),
    data: Joi.array()
      .required()
      .min(1)
      .max(limits.maxDataItems)
      .items(Joi.object().pattern(Joi.string(), dataValue)),
  })
    .required()
    .messages({ 'object.base': '{{#label}} must be a JSON object' });
}

/** `['data', 3, 'key']` -> `data[3].key`; the root is called `body`. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? p : `.${p}`;
  }
  return out === '' ? 'body' : out;
}

const schemaCache = new Map<string, Joi.ObjectSchema>();

const URL_CACHE_MAX = 1000;
/** URL templates already found to be absolute http(s) URLs: clients send the same few again and again. */
const goodUrls = new Set<string>();

function isGoodUrl(url: string): boolean {
  if (goodUrls.has(url)) return true;
  if (!isHttpUrlTemplate(url)) return false;
  if (goodUrls.size >= URL_CACHE_MAX) goodUrls.clear();
  goodUrls.add(url);
  return true;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The common case checked by hand, for speed: a request the schema accepts, in the shape clients send.
 * Returns undefined for anything it is not sure of, and joi decides (and explains). Never looser than
 * the schema: test/unit/schemas.test.ts checks both on thousands of generated bodies.
 */
export function quickValidate(body: unknown, limits: IngestLimits): IngestRequest | undefined {
  if (!isPlainObject(body)) return undefined;
  for (const k in body) if (k !== 'endpoint' && k !== 'data') return undefined;
  const { endpoint, data } = body;
  if (!isPlainObject(endpoint) || !Array.isArray(data)) return undefined;
  for (const k in endpoint) if (k !== 'method' && k !== 'url') return undefined;
  const { method, url } = endpoint;
  if (typeof method !== 'string' || typeof url !== 'string') return undefined;
  if (!METHOD.test(method)) return undefined;
  if (url.length > limits.maxUrlLength || !isGoodUrl(url)) return undefined;
  if (data.length < 1 || data.length > limits.maxDataItems) return undefined;
  for (const item of data) {
    if (!isPlainObject(item)) return undefined;
    for (const k in item) {
      if (k === '') return undefined; // the schema's keys are Joi.string(), which refuses ''
      const v = item[k];
      if (typeof v === 'string' || typeof v === 'boolean' || v === null) continue;
      // joi's number() refuses what is not finite or not a safe magnitude ("unsafe"): leave those to it.
      if (typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) continue;
      return undefined;
    }
  }
  return { template: { method: method.toUpperCase() as HttpMethod, url }, data: data as DataObject[] };
}

export function validateIngestRequest(body: unknown, limits: IngestLimits): IngestRequest {
  return quickValidate(body, limits) ?? validateWithSchema(body, limits);
}

/** The joi schema's verdict: the request, or a ValidationError naming every bad field. */
export function validateWithSchema(body: unknown, limits: IngestLimits): IngestRequest {
  const cacheKey = `${limits.maxDataItems}/${limits.maxUrlLength}`;
  let schema = schemaCache.get(cacheKey);
  if (!schema) {
    schema = buildSchema(limits);
    schemaCache.set(cacheKey, schema);
  }
  const { error, value } = schema.validate(body, {
    abortEarly: false,
    convert: false,
    errors: { label: 'path', wrap: { label: false } },
  });
  if (error) {
    const details: ErrorDetail[] = error.details.slice(0, 20).map((d) => {
      const path = formatPath(d.path);
      // joi labels the root "value"; say "body" like the path does.
      return { path, message: d.message.replace(/^value /, 'body ') };
    });
    const first = details[0]!;
    const more = error.details.length > 1 ? ` (and ${error.details.length - 1} more)` : '';
    throw new ValidationError(`${first.message}${more}`, details);
  }
  return {
    template: { method: value.endpoint.method.toUpperCase(), url: value.endpoint.url },
    data: value.data,
  };
}
