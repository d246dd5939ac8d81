/**
 * Validation of an ingest request. Pure: takes the parsed body and the limits, returns the endpoint and
 * the data objects, or throws a ValidationError whose details name each bad field (`data[3].key`).
 */
import Joi from 'joi';
import { ValidationError, type ErrorDetail } from '../shared/errors.js';
import type { Template } from '../shared/queue.js';
import { isHttpUrlTemplate, type DataObject } from '../shared/template.js';

export interface IngestLimits {
  readonly maxDataItems: number;
  readonly maxUrlLength: number;
}

export interface IngestRequest {
  readonly template: Template;
  readonly data: readonly DataObject[];
}

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
        .pattern(/^(get|post)$/i)
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

export function validateIngestRequest(body: unknown, limits: IngestLimits): IngestRequest {
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
