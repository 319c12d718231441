<?php
// Sign and verify kustom-app webhooks in PHP (>= 7.4), with hash_hmac only.
//
//   $header = kustom_sign($secret, $rawBody);           // send as X-Commerce-Signature
//   $reason = kustom_verify($secret, $rawBody, $header); // X-Kustom-App-Signature; null = valid
//
// $rawBody is the exact bytes on the wire: file_get_contents('php://input') on the receiving
// side (Laravel: $request->getContent()), the string you pass to curl on the sending side;
// never json_encode(json_decode(...)). Timestamps are unix SECONDS (time()). Format:
// docs/signing.md.
//
// `php examples/signing/sign.php schemas/signing-vectors.json` checks these functions
// against the known-answer vectors (prints the results as JSON).
declare(strict_types=1);

const KUSTOM_TOLERANCE_SECONDS = 300;

function kustom_mac(string $secret, int $timestamp, string $body): string
{
    return hash_hmac('sha256', $timestamp . '.' . $body, $secret);
}

function kustom_sign(string $secret, string $body, ?int $timestamp = null): string
{
    $t = $timestamp ?? time();
    return 't=' . $t . ',v1=' . kustom_mac($secret, $t, $body);
}

// null when $header signs $body within the tolerance, else why not:
// 'missing', 'malformed', 'tolerance' or 'mismatch'.
function kustom_verify(
    string $secret,
    string $body,
    ?string $header,
    ?float $now = null,
    int $tolerance = KUSTOM_TOLERANCE_SECONDS
): ?string {
    if ($header === null || $header === '') {
        return 'missing';
    }
    $timestamp = null;
    $macs = [];
    foreach (explode(',', $header) as $entry) {
        $pair = explode('=', trim($entry), 2);
        $key = $pair[0];
        $value = $pair[1] ?? '';
        if ($key === 't' && preg_match('/^[0-9]+$/D', $value) === 1) {
            $timestamp = (int) $value;
        } elseif ($key === 'v1' && $value !== '') {
            $macs[] = $value;
        }
    }
    if ($timestamp === null || count($macs) === 0) {
        return 'malformed';
    }
    if (abs(($now ?? microtime(true)) - $timestamp) > $tolerance) {
        return 'tolerance';
    }
    $expected = kustom_mac($secret, $timestamp, $body);
    // Several v1 entries: the sender is rotating secrets; one match is enough.
    foreach ($macs as $mac) {
        if (hash_equals($expected, $mac)) {
            return null;
        }
    }
    return 'mismatch';
}

if (PHP_SAPI === 'cli' && isset($argv[1]) && realpath($argv[0]) === __FILE__) {
    $vectors = json_decode(file_get_contents($argv[1]), true, 512, JSON_THROW_ON_ERROR);
    $result = ['sign' => new stdClass(), 'verify' => new stdClass()];
    foreach ($vectors['sign'] as $v) {
        $result['sign']->{$v['name']} = kustom_sign($v['secret'], base64_decode($v['bodyBase64'], true), $v['timestamp']);
    }
    foreach ($vectors['verify'] as $v) {
        $result['verify']->{$v['name']} = kustom_verify($v['secret'], base64_decode($v['bodyBase64'], true), $v['header'], (float) $v['now']);
    }
    echo json_encode($result, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
}
