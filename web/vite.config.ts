// Vite build of the Warren console. The output (web/dist) is committed and embedded in the
// control plane binary (crates/warren-server/src/console.rs), so the build must be
// reproducible: stable file names without hashes (the server sends ETags instead), no
// timestamps, one JS and one CSS file.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  esbuild: {
    jsx: "automatic",
    jsxImportSource: "preact",
    legalComments: "none",
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2020",
    sourcemap: false,
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    rollupOptions: {
      output: {
        entryFileNames: "assets/console.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
  server: {
    // `npm run dev` against a local `warren server` on :8080.
    proxy: {
      "/v1": { target: "http://127.0.0.1:8080", ws: true },
    },
  },
});
