/** The part of autocannon's API the fallback load generator uses (the package ships no types). */
declare module "autocannon" {
  interface Histogram {
    mean: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
  }
  interface Result {
    duration: number;
    requests: { total: number };
    latency: Histogram;
    non2xx: number;
    errors: number;
    timeouts: number;
  }
  interface Options {
    url: string;
    connections: number;
    duration: number;
    timeout: number;
    connectionRate?: number;
    requests: { setupRequest: (req: never) => unknown }[];
  }
  function autocannon(options: Options): Promise<Result>;
  export default autocannon;
}
