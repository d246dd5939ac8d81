/**
 * The whole delivery suite again with DELIVERY_HTTP_CLIENT=node: the node:http client must pass every
 * test the got client passes (the outcome-by-outcome comparison is in deliverer.test.ts).
 */
import assert from 'node:assert/strict';

process.env.PB_TEST_HTTP_CLIENT = 'node';
await import('./delivery.test.js');

const { it } = await import('node:test');
const { Stack } = await import('../helpers/stack.js');
it('the stack of these tests runs the node client', async () => {
  const stack = await Stack.start();
  try {
    assert.equal(stack.config.deliveryHttpClient, 'node');
  } finally {
    await stack.stop();
  }
});
