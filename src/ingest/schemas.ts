/**
 * Validation of an ingest request. Pure: takes the parsed body and the limits, returns the endpoint and
 * the data objects, or throws a ValidationError whose details name each bad field (`data[3].key`).
 */
import Joi from 'joi';
import type { Config } from '../shared/config.js';
import { checkUrlTarget, type DestinationPolicy } from '../shared/destination-policy.js';
import { ValidationError, type ErrorDetail } from '../shared/errors.js';
import type { HttpMethod, Template } from '../shared/queue.js';
import {
  compileTemplate,
  expandedLength,
  formBodyLength,
  placeholderProblem,
  probeUrl,
  type CompiledTemplate,
  type DataObject,
} from '../shared/template.js';

/**
 * What the delivery side will refuse (a destination the policy forbids, a URL or body over the limits):
 * ingest refuses it first, with a 400 naming the field, wherever it can tell from the request alone.
 */
export interface DeliveryLimits {
  readonly policy: DestinationPolicy;
  /** Longest expanded URL, characters (DELIVERY_MAX_URL_LENGTH). */
  readonly maxUrlLength: number;
  /** Largest POST body, bytes (DELIVERY_MAX_BODY_BYTES). */
  readonly maxBodyBytes: number;
  readonly postFormat: 'json' | 'form';
  readonly unmatchedDefault: string;
}

export function deliveryLimitsFrom(
  config: Pick<Config, 'destinationPolicy' | 'deliveryMaxUrlLength' | 'deliveryMaxBodyBytes' | 'deliveryPostFormat' | 'unmatchedPlaceholderDefault'>,
): DeliveryLimits {
  return {
    policy: config.destinationPolicy,
    maxUrlLength: config.deliveryMaxUrlLength,
    maxBodyBytes: config.deliveryMaxBodyBytes,
    postFormat: config.deliveryPostFormat,
    unmatchedDefault: config.unmatchedPlaceholderDefault,
  };
}

export interface IngestLimits {
  readonly maxDataItems: number;
  readonly maxUrlLength: number;
  readonly delivery: DeliveryLimits;
}

export interface IngestRequest {
  readonly template: Template;
  readonly data: readonly DataObject[];
  /** Each data object as compact JSON: what is queued (and, for JSON POSTs, sent). */
  readonly dataJson: readonly string[];
}

/** The schema's method rule (a regex, as there: 'poſt'.toUpperCase() is 'POST', but /i does not match it). */
const METHOD = /^(get|post)$/i;

const dataValue = Joi.alternatives()
  .try(Joi.string().allow(''), Joi.number(), Joi.boolean(), Joi.valid(null))
  .messages({
    'alternatives.match': '{{#label}} must be a string, number, boolean or null',
    'alternatives.types': '{{#label}} must be a string, number, boolean or null',
  });

/**
 * What is wrong with an endpoint.url template (the text after the field's name), or undefined: not an
 * absolute http(s) URL, odd placeholders, port 0, or a destination the policy refuses that can be seen
 * without DNS (a literal address, localhost, a port outside DELIVERY_ALLOW_PORTS).
 */
export function urlTemplateProblem(url: string, limits: IngestLimits): string | undefined {
  const probe = probeUrl(url);
  if (!probe) return 'must be an absolute http:// or https:// URL';
  const braces = placeholderProblem(url);
  if (braces) return braces;
  const { verdict, address } = checkUrlTarget(limits.delivery.policy, probe);
  if (verdict.allowed) return undefined;
  switch (verdict.reason) {
    case 'invalid_port':
      return 'must have a port from 1 to 65535';
    case 'port_not_allowed':
      return `has port ${probe.port || (probe.protocol === 'https:' ? 443 : 80)}, which deliveries may not connect to`;
    default:
      return `points at ${address}, a ${verdict.reason} address deliveries may not connect to`;
  }
}

/** Templates already judged, per limits object: clients send the same few again and again. */
const URL_CACHE_MAX = 1000;
const urlVerdicts = new WeakMap<IngestLimits, Map<string, string | undefined>>();

function urlProblemCached(url: string, limits: IngestLimits): string | undefined {
  let cache = urlVerdicts.get(limits);
  if (!cache) {
    cache = new Map();
    urlVerdicts.set(limits, cache);
  }
  if (cache.has(url)) return cache.get(url);
  const problem = urlTemplateProblem(url, limits);
  if (cache.size >= URL_CACHE_MAX) cache.clear();
  cache.set(url, problem);
  return problem;
}

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
        .custom((value: string, helpers) => {
          const problem = urlProblemCached(value, limits);
          return problem ? helpers.error('string.urlTemplate', { problem }) : value;
        })
        .messages({ 'string.urlTemplate': '{{#label}} {{#problem}}' }),
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

const schemas = new WeakMap<IngestLimits, Joi.ObjectSchema>();

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
  if (url.length > limits.maxUrlLength || urlProblemCached(url, limits) !== undefined) return undefined;
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
  return withSizes({ method: method.toUpperCase() as HttpMethod, url }, data as DataObject[], limits);
}

/** The request's shape and values, then what each postback would be once expanded. Throws ValidationError. */
export function validateIngestRequest(body: unknown, limits: IngestLimits): IngestRequest {
  return quickValidate(body, limits) ?? validateWithSchema(body, limits);
}

const compiled = new Map<string, CompiledTemplate>();

/**
 * The request with each data object's JSON, once every postback is known to fit the delivery limits: the
 * expanded URL (measured, not built: a long value in a repeated placeholder would not fit in memory) and
 * the POST body. A ValidationError names each data object that does not (`data[3]`).
 */
function withSizes(template: Template, data: readonly DataObject[], limits: IngestLimits): IngestRequest {
  const d = limits.delivery;
  let tpl = compiled.get(template.url);
  if (!tpl) {
    if (compiled.size >= URL_CACHE_MAX) compiled.clear();
    tpl = compileTemplate(template.url);
    compiled.set(template.url, tpl);
  }
  const dataJson = data.map((item) => JSON.stringify(item));
  const details: ErrorDetail[] = [];
  for (let i = 0; i < data.length && details.length < 20; i++) {
    const urlLength = expandedLength(tpl, data[i]!, d.unmatchedDefault);
    if (urlLength > d.maxUrlLength) {
      details.push({ path: `data[${i}]`, message: `data[${i}] expands endpoint.url to ${urlLength} characters, more than the limit of ${d.maxUrlLength}` });
    }
    if (template.method === 'POST') {
      const bytes = d.postFormat === 'form' ? formBodyLength(data[i]!) : Buffer.byteLength(dataJson[i]!);
      if (bytes > d.maxBodyBytes) {
        details.push({ path: `data[${i}]`, message: `data[${i}] makes a POST body of ${bytes} bytes, more than the limit of ${d.maxBodyBytes}` });
      }
    }
  }
  if (details.length) {
    const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
    throw new ValidationError(`${details[0]!.message}${more}`, details);
  }
  return { template, data, dataJson };
}

/** The joi schema's verdict: the request, or a ValidationError naming every bad field. */
export function validateWithSchema(body: unknown, limits: IngestLimits): IngestRequest {
  let schema = schemas.get(limits);
  if (!schema) {
    schema = buildSchema(limits);
    schemas.set(limits, schema);
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
  return withSizes({ method: value.endpoint.method.toUpperCase(), url: value.endpoint.url }, value.data, limits);
}
