// A Node.js caller of user-service, from the protos the repository ships.
// npm install @grpc/grpc-js @grpc/proto-loader protobufjs
// node grpc_client.mjs localhost:50051 path/to/user-service/protos
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const [target = 'localhost:50051', protos = 'protos'] = process.argv.slice(2);

const options = {
  keepCase: true, // first_name, as in the proto and the JSON of grpcurl; else firstName
  longs: String, // int64 (version, sequence) as "1"; else a Long object
  enums: String, // "USER_STATUS_ACTIVE"; else 1
  defaults: true, // unset fields present with their default (false, 0, "")
  oneofs: true, // the name of the oneof's field that is set, as a field of its own
  includeDirs: [protos],
};
const files = ['biome/user/v1/user_service.proto', 'grpc/health/v1/health.proto'];
const api = grpc.loadPackageDefinition(protoLoader.loadSync(files, options));
// With TLS and an API key (see "Calling a server with TLS and API keys"):
//   grpc.credentials.combineChannelCredentials(grpc.credentials.createSsl(caPem),
//     grpc.credentials.createFromMetadataGenerator((_, done) => {
//       const metadata = new grpc.Metadata();
//       metadata.set('authorization', `Bearer ${apiKey}`);
//       done(null, metadata);
//     }));
const credentials = grpc.credentials.createInsecure();
const users = new api.biome.user.v1.UserService(target, credentials);
const health = new api.grpc.health.v1.Health(target, credentials);

function call(client, method, request) {
  const deadline = Date.now() + 5000;
  return new Promise((resolve, reject) =>
    client[method](request, { deadline }, (error, reply) => (error ? reject(error) : resolve(reply))),
  );
}

// The error's google.rpc.Status (trailer grpc-status-details-bin), its details unpacked.
const rpc = new protobuf.Root().loadSync(
  ['google/rpc/status.proto', 'google/rpc/error_details.proto'].map((f) => `${protos}/${f}`),
  { keepCase: true },
);
const Status = rpc.lookupType('google.rpc.Status');
function statusDetails(error) {
  const [bytes] = error.metadata?.get('grpc-status-details-bin') ?? [];
  if (!bytes) return []; // a status without details (UNAVAILABLE from the channel, say)
  const status = Status.decode(bytes);
  return status.details.map((any) => {
    const type = rpc.lookupType(any.type_url.slice(any.type_url.lastIndexOf('/') + 1));
    return { type: type.fullName.slice(1), ...type.toObject(type.decode(any.value), options) };
  });
}

const registered = await call(users, 'RegisterUser', {
  email: `grace.${Date.now()}@example.com`,
  password: 'cobol-and-compilers',
  first_name: 'Grace',
  last_name: 'Hopper',
});
const fetched = await call(users, 'GetUser', { id: registered.id });
let invalid;
try {
  await call(users, 'RegisterUser', { email: 'not an address', password: 'short' });
} catch (error) {
  // error.code is grpc.status.INVALID_ARGUMENT; one BadRequest violation per field
  invalid = { code: grpc.status[error.code], details: statusDetails(error) };
}
const serving = await call(health, 'Check', { service: '' });
console.log(JSON.stringify({ registered, fetched, invalid, health: serving }, null, 2));
users.close();
health.close();
