/** `lesionfuse keygen --out NAME`: an Ed25519 key pair for signing bundles (NAME.pem private, NAME.pub.pem public). */
import type { CommandModule } from 'yargs';
import { existsSync } from 'node:fs';
import { generateSigningKeys } from '../../package/signing.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { LesionFuseError } from '../../util/errors.js';
import { log } from '../../util/log.js';

interface Args {
  out: string;
}

export const command: CommandModule<object, Args> = {
  command: 'keygen',
  describe: 'make an Ed25519 key pair for signing bundles: NAME.pem (private, keep it secret) and NAME.pub.pem (give to devices)',
  builder: (y) =>
    y
      .option('out', { type: 'string', demandOption: true, describe: 'path and name of the key files, without extension' })
      .example('$0 keygen --out keys/clinic', 'writes keys/clinic.pem and keys/clinic.pub.pem'),
  handler: async (a) => {
    const priv = `${a.out}.pem`;
    const pub = `${a.out}.pub.pem`;
    for (const f of [priv, pub]) if (existsSync(f)) throw new LesionFuseError('exists; keys are never overwritten (choose another --out)', { subject: f });
    const k = generateSigningKeys();
    // The private key is readable by its owner only, from its first byte (the temporary file is made 0600).
    await writeFileAtomic(priv, k.privateKeyPem, { mode: 0o600 });
    await writeFileAtomic(pub, k.publicKeyPem);
    log.info(`key id ${k.keyId}`);
    process.stdout.write(`${priv}\n${pub}\n`);
  },
};
