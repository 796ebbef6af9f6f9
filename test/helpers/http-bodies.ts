// Request bodies for fastify.inject: images and multipart forms.
import sharp from 'sharp';

/** A uniform grey PNG (the fake engine classifies grey 25c as class c). */
export function greyPng(value: number, size = 12): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: { r: value, g: value, b: value } } })
    .png()
    .toBuffer();
}

export function multipart(parts: Array<{ name: string; file?: Buffer; value?: string; type?: string }>): {
  body: Buffer;
  contentType: string;
} {
  const boundary = '----swin-test-boundary-7d1f';
  const chunks: Buffer[] = [];
  parts.forEach((p, i) => {
    const head = p.file
      ? `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"; filename="img${i}.png"\r\nContent-Type: ${p.type ?? 'image/png'}\r\n\r\n`
      : `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"\r\n\r\n`;
    chunks.push(Buffer.from(head), p.file ?? Buffer.from(p.value ?? ''), Buffer.from('\r\n'));
  });
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}
