// Builds the console into the Python package, so the gateway serves it with no CDN and no
// npm at run time: `npm ci && npm run build` (or `make console` at the top).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  build: {
    outDir: '../gateway/console/static',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
    sourcemap: false,
  },
});
