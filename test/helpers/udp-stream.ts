// The counted UDP stream lives in the lab (the soak bench uses it too).
export { startUdpStream, type StreamResult, type UdpStream } from '../../lab/udp-stream';
