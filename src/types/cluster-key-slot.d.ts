/** cluster-key-slot ships no types: the CRC16 hash slot of a key (of its hash tag when it has one). */
declare module "cluster-key-slot" {
  export default function calculateSlot(key: string | Buffer): number;
}
