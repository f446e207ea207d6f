// Mouse strokes on a drawing canvas, shared by the end-to-end tests (not a test file itself: run.mjs only
// runs `*.test.mjs`).

/**
 * Draws `strokes` (lists of [x, y] points in a 280x280 frame) with the mouse on the canvas `selector`,
 * scaled to its on-screen size: one press–move–release per stroke.
 */
export async function drawStrokes(page, selector, strokes) {
  const box = await page.locator(selector).boundingBox();
  const sx = box.width / 280;
  const sy = box.height / 280;
  for (const stroke of strokes) {
    const [x0, y0] = stroke[0];
    await page.mouse.move(box.x + x0 * sx, box.y + y0 * sy);
    await page.mouse.down();
    for (let i = 1; i < stroke.length; i++) {
      const [x, y] = stroke[i];
      await page.mouse.move(box.x + x * sx, box.y + y * sy, { steps: 4 });
    }
    await page.mouse.up();
  }
}
