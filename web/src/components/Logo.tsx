export function Logo({ size = 28 }: { size?: number }) {
  return (
    <svg width={size} height={size} viewBox="0 0 32 32" aria-hidden="true" class="logo">
      <rect width="32" height="32" rx="7" fill="#4f46e5" />
      <path d="M7 10l3.2 12h2.2L16 13.5l3.6 8.5h2.2L25 10h-2.6l-2 8-3.3-8h-2.2l-3.3 8-2-8z" fill="#fff" />
    </svg>
  );
}
